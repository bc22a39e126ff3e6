/**
 * Client ops the application's backend answers (MESH_RPC_URL): what the gateway
 * asks of it. Declared here so that core/ depends on an interface; the HTTP
 * client is hooks/rpc-client.ts.
 */

/** One `rpc` op from a client, with who sent it. */
export interface RpcCall {
  method: string;
  data: unknown;
  uid: string;
  connection: string;
}

/** The backend's answer: the result for the caller, and messages to publish on the caller's behalf. */
export interface RpcAnswer {
  result: unknown;
  publish: { channel: string; data: string }[];
}

export interface Backend {
  /** Resolves with the answer; rejects with ERR_RPC_REFUSED (the backend's own error), ERR_RPC_TIMEOUT or ERR_RPC_UNAVAILABLE. */
  rpc(call: RpcCall): Promise<RpcAnswer>;
}
