// A program with an admin shell and no telemetry code at all: the host of
// the zero-code recipe in auto-instrumentation.md.
import { start } from "node:repl";

const shell = start({ prompt: "admin> " });
shell.context.config = { region: "eu-west-1", replicas: 3 };
