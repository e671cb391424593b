export const MIN_NODE = [22, 15] as const;

/** A message when `version` (as in process.versions.node) is too old, else undefined. */
export function checkNodeVersion(version: string): string | undefined {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  if (major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])) return undefined;
  return (
    `needs Node.js >= ${MIN_NODE.join(".")} (this is ${version}). ` +
    "Inside the project, run it through npm (npm start, npm exec shell-sessions), which uses the Node.js it installs."
  );
}
