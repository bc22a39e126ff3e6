<?php
// Transactional publish: the notification is part of the business transaction.
// If the transaction rolls back, nobody is notified; if it commits, pgmesh delivers.
//
//   DATABASE_URL=postgres://user:pass@host:5432/app php examples/php/order.php 1001 [--fail]
//
// mesh_publish(channel, data) is created in the database by pgmesh's migrations.

function pdo_from_url(string $url): PDO
{
    $u = parse_url($url);
    $dsn = sprintf('pgsql:host=%s;port=%d;dbname=%s', $u['host'], $u['port'] ?? 5432, ltrim($u['path'], '/'));
    $pdo = new PDO($dsn, urldecode($u['user'] ?? ''), urldecode($u['pass'] ?? ''));
    $pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
    return $pdo;
}

$uid = $argv[1] ?? '1001';
$fail = in_array('--fail', $argv, true);
$pdo = pdo_from_url(getenv('DATABASE_URL'));

$pdo->beginTransaction();
try {
    // ... the application's own writes (orders, payments) go here ...
    $stmt = $pdo->prepare('select mesh_publish(?, ?)');
    $stmt->execute(["user:$uid", json_encode(['event' => 'order', 'data' => ['status' => 'paid']])]);
    if ($fail) {
        throw new RuntimeException('payment declined');
    }
    $pdo->commit();
    echo "committed\n";
} catch (Throwable $e) {
    $pdo->rollBack();
    echo "rolled back: {$e->getMessage()}\n";
}
