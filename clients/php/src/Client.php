<?php

namespace Pgmesh;

/**
 * The pgmesh server API from PHP (curl only). Method names follow Workerman's
 * GatewayClient, so moving a GatewayWorker backend is a search-and-replace:
 * Gateway::sendToUid($uid, $msg) becomes $mesh->sendToUid($uid, $msg).
 *
 * Every call is one HTTP request and answers the same on every pgmesh instance.
 * Client ids are pgmesh connection ids (the "connection" of a client's auth reply).
 */
class Client
{
    /** @var string */
    private $url;
    /** @var string|null */
    private $apiKey;
    /** @var float */
    private $timeout;

    /**
     * @param string $url     pgmesh's base URL, e.g. http://127.0.0.1:8080
     * @param string|null $apiKey MESH_API_KEY (null: the server must answer local callers without one)
     */
    public function __construct(string $url, ?string $apiKey = null, float $timeout = 5.0)
    {
        $this->url = rtrim($url, '/');
        $this->apiKey = $apiKey;
        $this->timeout = $timeout;
    }

    /** Publishes $data (a string is delivered verbatim, anything else as its JSON) to a channel; returns the stored id. */
    public function publish(string $channel, $data, array $excludeClientIds = []): int
    {
        $body = ['c' => $channel, 'd' => $data];
        if ($excludeClientIds) {
            $body['exclude'] = array_values($excludeClientIds);
        }
        return $this->call('POST', '/publish', $body)['id'];
    }

    /** Sends to every connection of a user (their channel user:<uid>). */
    public function sendToUid(string $uid, $message, array $excludeClientIds = []): int
    {
        return $this->publish("user:$uid", $message, $excludeClientIds);
    }

    /** Sends to every subscriber of a channel (a group). */
    public function sendToGroup(string $group, $message, array $excludeClientIds = []): int
    {
        return $this->publish($group, $message, $excludeClientIds);
    }

    /** Sends to every live connection, subscribed to anything or not. */
    public function sendToAll($message, array $excludeClientIds = []): int
    {
        $body = ['all' => true, 'd' => $message];
        if ($excludeClientIds) {
            $body['exclude'] = array_values($excludeClientIds);
        }
        return $this->call('POST', '/publish', $body)['id'];
    }

    /** Whether the user has a live connection on any instance. */
    public function isUidOnline(string $uid): bool
    {
        return $this->call('GET', '/users/' . rawurlencode($uid))['online'];
    }

    /** The user's live connection ids. */
    public function getClientIdByUid(string $uid): array
    {
        return array_column($this->getClientInfoByUid($uid), 'id');
    }

    /** The user's live connections: id, instance, transport, channels, connectedAt. */
    public function getClientInfoByUid(string $uid): array
    {
        return $this->call('GET', '/users/' . rawurlencode($uid))['connections'];
    }

    /** Every online user subscribed to a channel. */
    public function getUidListByGroup(string $group): array
    {
        return $this->allPages('/users', ['channel' => $group], 'users');
    }

    /** Every online user. */
    public function getAllUidList(): array
    {
        return $this->allPages('/users', [], 'users');
    }

    public function getAllUidCount(): int
    {
        return $this->call('GET', '/users?limit=1')['count'];
    }

    /** Every channel with at least one subscriber: [name => ['subscribers' => n, 'users' => n]]. */
    public function getAllGroupIdList(): array
    {
        $out = [];
        foreach ($this->allPages('/channels', [], 'channels') as $c) {
            $out[$c['channel']] = ['subscribers' => $c['subscribers'], 'users' => $c['users']];
        }
        return $out;
    }

    public function getClientCountByGroup(string $group): int
    {
        foreach ($this->call('GET', '/channels?' . http_build_query(['prefix' => $group, 'limit' => 1000]))['channels'] as $c) {
            if ($c['channel'] === $group) {
                return $c['subscribers'];
            }
        }
        return 0;
    }

    /** One connection joins a channel. */
    public function joinGroup(string $clientId, string $group): void
    {
        $this->call('POST', '/connections/' . rawurlencode($clientId) . '/subscribe', ['channels' => [$group]]);
    }

    public function leaveGroup(string $clientId, string $group): void
    {
        $this->call('POST', '/connections/' . rawurlencode($clientId) . '/unsubscribe', ['channels' => [$group]]);
    }

    /** Every connection of a user joins a channel (and so does nobody else). */
    public function joinGroupByUid(string $uid, string $group): void
    {
        $this->call('POST', '/users/' . rawurlencode($uid) . '/subscribe', ['channels' => [$group]]);
    }

    public function leaveGroupByUid(string $uid, string $group): void
    {
        $this->call('POST', '/users/' . rawurlencode($uid) . '/unsubscribe', ['channels' => [$group]]);
    }

    /** Everyone leaves the channel. */
    public function ungroup(string $group): void
    {
        $this->call('DELETE', '/channels/' . rawurlencode($group) . '/subscribers');
    }

    /** Closes one connection (close code 4003; the browser client does not reconnect). */
    public function closeClient(string $clientId, string $reason = 'closed by the server'): void
    {
        $this->call('DELETE', '/connections/' . rawurlencode($clientId) . '?' . http_build_query(['reason' => $reason]));
    }

    /** Closes every connection of a user. */
    public function closeUid(string $uid, string $reason = 'closed by the server'): void
    {
        $this->call('DELETE', '/users/' . rawurlencode($uid) . '/connections?' . http_build_query(['reason' => $reason]));
    }

    /**
     * Stored messages of a channel, oldest first: the last $limit, or the first $limit after $since.
     * Returns ['messages' => [['id' => …, 'data' => …, 'uid' => …?]], 'position' => id]; a page then
     * subscribes with since = position and misses nothing.
     */
    public function history(string $channel, int $limit = 100, ?int $since = null): array
    {
        $query = ['limit' => $limit];
        if ($since !== null) {
            $query['since'] = $since;
        }
        $answer = $this->call('GET', '/channels/' . rawurlencode($channel) . '/history?' . http_build_query($query));
        return ['messages' => $answer['messages'], 'position' => $answer['position']];
    }

    private function allPages(string $path, array $query, string $field): array
    {
        $items = [];
        $cursor = null;
        do {
            $q = $query + ['limit' => 1000] + ($cursor === null ? [] : ['cursor' => $cursor]);
            $page = $this->call('GET', $path . '?' . http_build_query($q));
            $items = array_merge($items, $page[$field]);
            $cursor = $page['next'];
        } while ($cursor !== null);
        return $items;
    }

    /** One request to /v1/mesh; the decoded answer, or a MeshException with pgmesh's code. */
    private function call(string $method, string $path, ?array $body = null): array
    {
        $headers = [];
        if ($this->apiKey !== null) {
            $headers[] = 'Authorization: Bearer ' . $this->apiKey;
        }
        $ch = curl_init($this->url . '/v1/mesh' . $path);
        $options = [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT_MS => (int) ($this->timeout * 1000),
        ];
        if ($body !== null) {
            $headers[] = 'Content-Type: application/json';
            $options[CURLOPT_POSTFIELDS] = json_encode($body, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
        }
        $options[CURLOPT_HTTPHEADER] = $headers;
        curl_setopt_array($ch, $options);
        $text = curl_exec($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_HTTP_CODE);
        $error = curl_error($ch);
        curl_close($ch);
        if ($text === false) {
            throw new MeshException("pgmesh not reached: $error", 'ERR_NETWORK', 0);
        }
        $answer = json_decode($text, true);
        if ($status !== 200) {
            $code = is_array($answer) && isset($answer['code']) ? $answer['code'] : 'ERR_HTTP';
            $message = is_array($answer) && isset($answer['error']) ? $answer['error'] : $text;
            throw new MeshException("pgmesh $method $path: $status $code: $message", $code, $status);
        }
        if (!is_array($answer)) {
            throw new MeshException("pgmesh $method $path: answer is not JSON", 'ERR_HTTP', $status);
        }
        return $answer;
    }
}
