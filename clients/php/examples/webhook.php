<?php
// A php-fpm endpoint for pgmesh's webhooks (MESH_WEBHOOK_URL points here): the
// GatewayWorker Events::onConnect / onClose of a pgmesh app.
//
// Try it: MESH_WEBHOOK_SECRET=... php -S 127.0.0.1:9001 clients/php/examples/webhook.php
require __DIR__ . '/../autoload.php';

use Pgmesh\Webhook;

$body = (string) file_get_contents('php://input');
if (!Webhook::verify($body, $_SERVER[Webhook::SERVER_KEY] ?? null, getenv('MESH_WEBHOOK_SECRET') ?: '')) {
    http_response_code(401);
    exit;
}

$log = getenv('WEBHOOK_LOG') ?: sys_get_temp_dir() . '/pgmesh-webhooks.jsonl';
foreach (Webhook::events($body) as $event) {
    // Delivery is at least once: remember ids (INSERT … ON CONFLICT (event_id) DO NOTHING) and skip repeats.
    switch ($event['type']) {
        case 'user_online':   // UPDATE users SET online = 1 WHERE id = $event['uid']
        case 'user_offline':  // UPDATE users SET online = 0, last_seen = FROM_UNIXTIME($event['at'] / 1000) …
        case 'connect':       // $event['connection'], $event['uid'], $event['transport'], $event['instance']
        case 'disconnect':    // … and $event['reason']: client_closed, kicked, token_expired, instance_lost, …
        case 'subscribe':     // $event['channel'] too
        case 'unsubscribe':
        case 'channel_occupied':
        case 'channel_vacated':
            file_put_contents($log, json_encode($event) . "\n", FILE_APPEND | LOCK_EX);
            break;
        default:
            // A kind this code does not know yet: take it (answer 2xx), or pgmesh sends it again.
    }
}
// Any 2xx: the events are delivered. Anything else (or no answer in MESH_WEBHOOK_TIMEOUT): sent again later.
http_response_code(204);
