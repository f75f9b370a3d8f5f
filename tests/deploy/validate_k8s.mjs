// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Validates Kubernetes manifests against the API's JSON schemas bundled in
// the kubernetes-models package (generated from the Kubernetes OpenAPI
// spec, checked with ajv). Usage: node validate_k8s.mjs FILE.yaml...
// Prints "valid FILE KIND/NAME" or "invalid FILE KIND/NAME: errors" per
// object; exits 1 if any object is invalid or of a kind it does not know.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const kinds = {
  "v1/Namespace": "kubernetes-models/v1/Namespace",
  "v1/ServiceAccount": "kubernetes-models/v1/ServiceAccount",
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap",
  "apps/v1/DaemonSet": "kubernetes-models/apps/v1/DaemonSet",
};

let bad = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`invalid ${file}: YAML: ${doc.errors[0].message}`);
      bad++;
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    const what = `${obj.kind}/${obj.metadata?.name}`;
    const mod = kinds[`${obj.apiVersion}/${obj.kind}`];
    if (!mod) {
      console.log(`invalid ${file} ${what}: no schema for ${obj.apiVersion} ${obj.kind}`);
      bad++;
      continue;
    }
    const cls = Object.values(await import(mod))[0];
    try {
      new cls(obj).validate();
      console.log(`valid ${file} ${what}`);
    } catch (e) {
      console.log(`invalid ${file} ${what}: ${e.message}`);
      bad++;
    }
  }
}
process.exit(bad ? 1 : 0);
