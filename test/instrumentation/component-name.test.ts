/**
 * The component a shell is recorded under, when only the OpenTelemetry
 * variables name it: `OTEL_SERVICE_NAME`, else `service.name` in
 * `OTEL_RESOURCE_ATTRIBUTES`, read on the prompt path by our own parser,
 * which must answer as the SDK's detector does.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { resourceAttributesEnvDetector } from "@opentelemetry/resources";
import { describeShell, serviceNameFromResourceAttributes } from "../../src/instrumentation/shell.ts";

const CASES = [
  "service.name=billing",
  " service.name = billing ,deployment.environment=prod",
  "deployment.environment=prod,service.name=billing%2Dapi",
  "service.name=first,service.name=second",
  "service.name=a%2Cb%3Dc",
  "service.name=%E2%9C%93ok",
  "service.name=bad%ZZ",
  "service.name=billing,broken",
  "service.name=billing,=x",
  "service.name=a=b",
  "service.name=",
  ",,service.name=billing,,",
  `service.name=${"x".repeat(255)}`,
  `service.name=${"x".repeat(256)}`,
  "other=1",
  "",
  "   ",
];

test("service.name from OTEL_RESOURCE_ATTRIBUTES: the same answer as the SDK's detector, input by input", () => {
  const saved = process.env.OTEL_RESOURCE_ATTRIBUTES;
  try {
    for (const raw of CASES) {
      process.env.OTEL_RESOURCE_ATTRIBUTES = raw;
      const detected = resourceAttributesEnvDetector.detect().attributes?.["service.name"];
      const expected = typeof detected === "string" && detected.trim() !== "" ? detected : undefined;
      assert.equal(serviceNameFromResourceAttributes(raw), expected, JSON.stringify(raw));
    }
  } finally {
    if (saved === undefined) delete process.env.OTEL_RESOURCE_ATTRIBUTES;
    else process.env.OTEL_RESOURCE_ATTRIBUTES = saved;
  }
});

test("the component: SHELL_SESSIONS_COMPONENT, else OTEL_SERVICE_NAME, else the resource attributes' service.name", () => {
  const component = (env: NodeJS.ProcessEnv) => describeShell({}, {}, env, "REPLServer").component;
  const attributes = "deployment.environment=prod,service.name=billing";
  assert.equal(component({ OTEL_RESOURCE_ATTRIBUTES: attributes }), "billing");
  assert.equal(component({ OTEL_RESOURCE_ATTRIBUTES: attributes, OTEL_SERVICE_NAME: "payments" }), "payments");
  assert.equal(
    component({ OTEL_RESOURCE_ATTRIBUTES: attributes, OTEL_SERVICE_NAME: "payments", SHELL_SESSIONS_COMPONENT: "ops" }),
    "ops",
  );
  assert.equal(component({ OTEL_RESOURCE_ATTRIBUTES: "service.name=billing,broken" }), "unknown_service_node");
  assert.equal(component({}), "unknown_service_node");
});
