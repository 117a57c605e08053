/**
 * The V8 options the gateway runs with. `npm start` and the `matchbook-gateway` bin (its shebang)
 * pass them; whoever starts `node dist/src/main.js` some other way passes them on the command line or
 * in NODE_OPTIONS (README, "Memory"). A unit test keeps package.json and the shebang in agreement.
 *
 * --max-semi-space-size=4 (MB; V8's default is 16), for every thread of the process: V8 grows its
 * young generation to twice this whenever much survives a collection, as thousands of new
 * connections do in a connect storm, and hands it back only at a collection under a low allocation
 * rate, which an idle gateway never runs. With the default that is up to 32 MB per thread, kept after
 * the storm is over: held by 10,000 idle connections, it is most of their RSS (3.0 KB per connection
 * against 1.3 KB with this option, raw uWebSockets.js 1.0). The price is more, shorter scavenges:
 * with the simulator at 4,000 events/s, GC time went from 6 to 11 ms per second (0.5 % of a core)
 * and each scavenge from about 2.4 to 1 ms.
 */
export const GATEWAY_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=4'];
