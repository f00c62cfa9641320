// src/generated/ is what `npm run gen` makes from proto-events/schema today: a schema
// change committed without regenerating fails here.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { FILES, generate } from "../scripts/gen.mjs";

for (const [schema, out] of FILES) {
  test(`src/generated/${out} is current with proto-events/schema/${schema}`, async () => {
    const committed = await readFile(new URL(`../src/generated/${out}`, import.meta.url), "utf8");
    assert.equal(committed, await generate(schema), `stale: run \`npm run gen\` in sdk/typescript`);
  });
}
