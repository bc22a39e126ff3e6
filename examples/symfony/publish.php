<?php
// What a Symfony app does to push an update through a Mercure hub, with Symfony's own
// Mercure component (symfony/mercure 0.6, Debian's php-symfony-mercure): the Hub and
// its HttpClient, an Update (private or not, with an id and a type), a publisher token.
//
//   MERCURE_URL=http://127.0.0.1:8080/.well-known/mercure MERCURE_JWT_SECRET=... \
//     php publish.php <topic> <data> [private] [id] [type]
//
// A Symfony app gets its token from the bundle's factory (lcobucci/jwt, from composer);
// here the same claims are signed by hand, so the script runs with Debian's packages alone.
require_once 'Symfony/Component/Mercure/autoload.php';

use Symfony\Component\Mercure\Hub;
use Symfony\Component\Mercure\Jwt\StaticTokenProvider;
use Symfony\Component\Mercure\Update;

/** An HS256 JWT of these claims, as lcobucci/jwt signs one. */
function hs256(array $claims, string $secret): string
{
    $b64 = fn (string $s) => rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
    $signed = $b64(json_encode(['typ' => 'JWT', 'alg' => 'HS256'])).'.'.$b64(json_encode($claims));
    return $signed.'.'.$b64(hash_hmac('sha256', $signed, $secret, true));
}

[$script, $topic, $data] = $argv + [null, null, null];
if ($topic === null || $data === null) {
    fwrite(STDERR, "usage: php publish.php <topic> <data> [private] [id] [type]\n");
    exit(2);
}
$private = ($argv[3] ?? '') === 'private';
$id = ($argv[4] ?? '') !== '' ? $argv[4] : null;
$type = ($argv[5] ?? '') !== '' ? $argv[5] : null;

$token = hs256(['mercure' => ['publish' => ['*']]], getenv('MERCURE_JWT_SECRET') ?: '');
$hub = new Hub(getenv('MERCURE_URL') ?: 'http://127.0.0.1:8080/.well-known/mercure', new StaticTokenProvider($token));
try {
    echo $hub->publish(new Update($topic, $data, $private, $id, $type)), "\n";
} catch (\Throwable $e) {
    $why = $e->getPrevious() ? ': '.$e->getPrevious()->getMessage() : '';
    fwrite(STDERR, 'mercure publish failed: '.$e->getMessage().$why."\n");
    exit(1);
}
