<?php

declare(strict_types=1);

namespace Pgmesh;

/**
 * Checks what pgmesh sends your backend (webhooks and rpc calls): the
 * Pgmesh-Signature header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
 * with MESH_WEBHOOK_SECRET. Verify before you trust a byte of the body.
 */
final class Webhook
{
    /** The header as PHP's $_SERVER names it. */
    public const SERVER_KEY = 'HTTP_PGMESH_SIGNATURE';

    /** True when $header signs $body with $secret, and was made within $tolerance seconds of now. */
    public static function verify(string $body, ?string $header, string $secret, int $tolerance = 300, ?int $now = null): bool
    {
        if ($header === null || !preg_match('/^t=(\d+),v1=([0-9a-f]{64})$/', trim($header), $m)) {
            return false;
        }
        if (abs(($now ?? time()) - (int) $m[1]) > $tolerance) {
            return false;
        }
        return hash_equals(hash_hmac('sha256', $m[1] . '.' . $body, $secret), $m[2]);
    }

    /**
     * The events of a webhook body (each with `id`, `type`, `at` and its own fields), oldest first.
     * An event may come twice (delivery is at least once): skip ids you have seen.
     *
     * @return list<array<string, mixed>>
     */
    public static function events(string $body): array
    {
        $decoded = json_decode($body, true);
        if (!is_array($decoded) || !isset($decoded['events']) || !is_array($decoded['events'])) {
            throw new \InvalidArgumentException('not a pgmesh webhook body');
        }
        return array_values($decoded['events']);
    }

    /**
     * For a php-fpm endpoint: reads the request body, answers 401 and exits unless
     * pgmesh signed it, and returns it decoded.
     *
     * @return array<string, mixed>
     */
    public static function receive(string $secret): array
    {
        $body = (string) file_get_contents('php://input');
        if (!self::verify($body, $_SERVER[self::SERVER_KEY] ?? null, $secret)) {
            http_response_code(401);
            exit;
        }
        return json_decode($body, true);
    }
}
