<?php
// Triggers a Pusher event on pgmesh the way Laravel's Pusher broadcaster does:
// one signed POST to /apps/{id}/events, nothing but curl.
//
//   PUSHER_HOST=http://127.0.0.1:8080 PUSHER_APP_ID=1001 PUSHER_APP_KEY=app-key PUSHER_APP_SECRET=app-secret \
//     php examples/php/pusher-publish.php orders order.placed '{"id":42}' [socket_id to leave out]
$host = rtrim(getenv('PUSHER_HOST') ?: 'http://127.0.0.1:8080', '/');
$appId = getenv('PUSHER_APP_ID') ?: '';
$key = getenv('PUSHER_APP_KEY') ?: '';
$secret = getenv('PUSHER_APP_SECRET') ?: '';
[, $channel, $event, $data] = $argv + [null, null, null, null];
if ($channel === null || $event === null || $data === null) {
    fwrite(STDERR, "usage: pusher-publish.php <channel> <event> <data JSON> [socket_id]\n");
    exit(2);
}

$body = ['name' => $event, 'channels' => [$channel], 'data' => $data];
if (isset($argv[4])) {
    $body['socket_id'] = $argv[4]; // Laravel's toOthers()
}
$body = json_encode($body);

// The signature: HMAC-SHA256 of "POST\n<path>\n<query sorted by key>" with the app secret.
$path = "/apps/{$appId}/events";
$query = ['auth_key' => $key, 'auth_timestamp' => (string) time(), 'auth_version' => '1.0', 'body_md5' => md5($body)];
ksort($query);
$signed = implode('&', array_map(fn ($k, $v) => "{$k}={$v}", array_keys($query), $query));
$signature = hash_hmac('sha256', "POST\n{$path}\n{$signed}", $secret);

$curl = curl_init("{$host}{$path}?{$signed}&auth_signature={$signature}");
curl_setopt_array($curl, [
    CURLOPT_POST => true,
    CURLOPT_POSTFIELDS => $body,
    CURLOPT_HTTPHEADER => ['Content-Type: application/json'],
    CURLOPT_RETURNTRANSFER => true,
    CURLOPT_TIMEOUT => 10,
]);
$answer = curl_exec($curl);
$status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
if ($answer === false || $status !== 200) {
    fwrite(STDERR, "pusher event refused ({$status}): " . ($answer === false ? curl_error($curl) : $answer) . "\n");
    exit(1);
}
echo "sent {$event} to {$channel}\n";
