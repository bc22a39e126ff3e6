<?php
// A legacy PHP app (php-fpm, no long-lived connections) publishing through pgmesh.
//
//   MESH_URL=http://127.0.0.1:8080 MESH_API_KEY=... php examples/php/publish.php 1001 "Hello,World!"
//
// It sends the connmix body {"c": channel, "d": data}; `d` reaches the user's
// WebSocket verbatim, as one text frame. The answer carries the stored id.

function mesh_publish(string $channel, string $data): array
{
    $url = rtrim(getenv('MESH_URL') ?: 'http://127.0.0.1:8080', '/') . '/v1/mesh/publish';
    $headers = ['Content-Type: application/json'];
    if ($key = getenv('MESH_API_KEY')) {
        $headers[] = 'Authorization: Bearer ' . $key;
    }
    $ch = curl_init($url);
    curl_setopt_array($ch, [
        CURLOPT_POST => true,
        CURLOPT_HTTPHEADER => $headers,
        CURLOPT_POSTFIELDS => json_encode(['c' => $channel, 'd' => $data]),
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => 5,
    ]);
    $body = curl_exec($ch);
    $status = curl_getinfo($ch, CURLINFO_HTTP_CODE);
    curl_close($ch);
    if ($body === false || $status !== 200) {
        throw new RuntimeException("pgmesh publish failed ($status): $body");
    }
    return json_decode($body, true);
}

$uid = $argv[1] ?? '1001';
$msg = $argv[2] ?? 'Hello,World!';
$d = json_encode(['event' => '@user', 'data' => ['uid' => (int) $uid, 'msg' => $msg]]);
$answer = mesh_publish("user:$uid", $d);
echo "published as id {$answer['id']}\n";
