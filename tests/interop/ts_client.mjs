// An MCP host on the official TypeScript SDK: lists tools, calls send_message with progress
// (resetTimeoutOnProgress, a short timeout that only progress keeps alive), then cancels a
// second call with an AbortSignal on its first progress. Prints one JSON line of what it saw.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mode, target] = process.argv.slice(2);
const transport =
  mode === "stdio"
    ? new StdioClientTransport({
        command: target,
        args: [],
        env: {
          PATH: process.env.PATH,
          AITOEARN_API_KEY: process.env.AITOEARN_API_KEY,
          AITOEARN_BASE_URL: process.env.AITOEARN_BASE_URL,
        },
        stderr: "ignore",
      })
    : new StreamableHTTPClientTransport(new URL(target));

const client = new Client({ name: "ts-interop", version: "1.0.0" });
await client.connect(transport);
const out = {};
out.tools = (await client.listTools()).tools.map((tool) => tool.name).sort();

const ask = (content) => ({
  name: "send_message",
  arguments: { model: "claude-sonnet-5", messages: [{ role: "user", content }] },
});

const progress = [];
const result = await client.callTool(ask("slow"), undefined, {
  onprogress: (p) => progress.push(p.progress),
  resetTimeoutOnProgress: true,
  timeout: 1000, // the reply takes ~3 s: only progress keeps the request alive
  maxTotalTimeout: 60000,
});
out.text = result.content[0].text;
out.isError = Boolean(result.isError);
out.route = result.structuredContent?.route;
out.progress = progress;

const controller = new AbortController();
const cancelled = client.callTool(ask("cancel me"), undefined, {
  signal: controller.signal,
  timeout: 60000,
  onprogress: (p) => {
    if (p.progress > 0 && out.cancelledAt === undefined) {
      out.cancelledAt = Date.now();
      controller.abort("the host cancelled");
    }
  },
});
try {
  await cancelled;
  out.cancelError = null;
} catch (error) {
  out.cancelError = String(error);
}
await new Promise((resolve) => setTimeout(resolve, 1500)); // let the server see the cancel
await client.close();
console.log(JSON.stringify(out));
