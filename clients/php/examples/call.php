<?php
// Calls one method of Pgmesh\Client from the shell and prints its answer as JSON:
//
//   MESH_URL=http://127.0.0.1:8080 MESH_API_KEY=... php clients/php/examples/call.php sendToUid '["1001","Hello"]'
//   php clients/php/examples/call.php isUidOnline '["1001"]'
//
// A refused call prints {"error":…,"code":"ERR_…","status":…} and exits 1.
require __DIR__ . '/../autoload.php';

use Pgmesh\Client;
use Pgmesh\MeshException;

$mesh = new Client(getenv('MESH_URL') ?: 'http://127.0.0.1:8080', getenv('MESH_API_KEY') ?: null);
$method = $argv[1] ?? '';
$args = json_decode($argv[2] ?? '[]', true);
if (!method_exists($mesh, $method) || !is_array($args)) {
    fwrite(STDERR, "usage: call.php <method> '<JSON array of arguments>'\n");
    exit(2);
}
try {
    echo json_encode(['result' => $mesh->$method(...$args)]), "\n";
} catch (MeshException $e) {
    echo json_encode(['error' => $e->getMessage(), 'code' => $e->getErrorCode(), 'status' => $e->getStatus()]), "\n";
    exit(1);
}
