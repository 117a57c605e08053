import type { TestClient } from './ws-client.js';

/** Stops reading from the client's TCP socket, so the server's send buffer fills as with a stuck client. */
export function stallReading(client: TestClient): void {
  (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
}

export function resumeReading(client: TestClient): void {
  (client.socket as unknown as { _socket: { resume(): void } })._socket.resume();
}
