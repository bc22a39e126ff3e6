<?php

namespace Pgmesh;

/** A refused or failed server-API call: the HTTP status and pgmesh's stable error code (ERR_…). */
class MeshException extends \RuntimeException
{
    /** @var string */
    private $errorCode;
    /** @var int */
    private $status;

    public function __construct(string $message, string $errorCode, int $status)
    {
        parent::__construct($message, $status);
        $this->errorCode = $errorCode;
        $this->status = $status;
    }

    /** The stable code, e.g. ERR_BAD_API_KEY, ERR_BAD_CHANNEL, ERR_UNAVAILABLE (or ERR_NETWORK when pgmesh was not reached). */
    public function getErrorCode(): string
    {
        return $this->errorCode;
    }

    public function getStatus(): int
    {
        return $this->status;
    }
}
