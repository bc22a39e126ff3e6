<?php
// A php-fpm endpoint that answers clients' `rpc` ops (MESH_RPC_URL points here):
//
//   client:  {"op":"rpc","method":"order.place","data":{"sku":"A1","qty":2},"rid":7}
//   here:    {"method":"order.place","data":{...},"uid":"1001","connection":"fra-1.…","instance":"fra-1"}
//   client:  {"op":"rpc","success":true,"result":{"order":…},"rid":7}
//
// Try it: MESH_WEBHOOK_SECRET=... php -S 127.0.0.1:9000 clients/php/examples/rpc.php
require __DIR__ . '/../autoload.php';

use Pgmesh\Webhook;

$call = Webhook::receive(getenv('MESH_WEBHOOK_SECRET') ?: '');
header('Content-Type: application/json');

switch ($call['method']) {
    case 'order.place':
        $qty = (int) ($call['data']['qty'] ?? 0);
        if ($qty < 1) {
            // Any status: the caller gets ERR_RPC_REFUSED with this code and message.
            http_response_code(422);
            echo json_encode(['error' => ['code' => 'BAD_QTY', 'message' => 'qty must be at least 1']]);
            break;
        }
        $order = random_int(1000, 9999); // your INSERT INTO orders … here
        echo json_encode([
            'result' => ['order' => $order, 'sku' => $call['data']['sku'] ?? null, 'qty' => $qty],
            // Published before the reply, as the caller's messages.
            'publish' => [['c' => 'room_orders', 'd' => "order {$order} placed by {$call['uid']}"]],
        ]);
        break;
    default:
        http_response_code(404);
        echo json_encode(['error' => ['code' => 'UNKNOWN_METHOD', 'message' => "no method {$call['method']}"]]);
}
