// Starts the pinned fauxqs SNS+SQS emulator on 127.0.0.1 only (the fauxqs
// CLI listens on every interface). PORT=0 (default) picks a free port.
// Prints "LISTENING <port>" on stdout once it accepts requests; stops on
// SIGTERM/SIGINT.
import { buildApp } from "fauxqs";

const port = parseInt(process.env.PORT ?? "0", 10);
const app = buildApp({ logger: false });
const addr = await app.listen({ port, host: "127.0.0.1" });
process.stdout.write(`LISTENING ${new URL(addr).port}\n`);
const stop = () => {
  app.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
