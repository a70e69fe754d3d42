import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { FakeWriter } from "../testing/FakeWriter.js";
import { COMMAND_MODULES, commandModulesFor, firstCommandWord, loadCommands } from "./commandModules.js";
import { bashScript, completionTree } from "./completionTree.js";
import { buildProgram } from "../program.js";

const deps = { env: {}, stdout: new FakeWriter(), stderr: new FakeWriter(), homedir: "/nonexistent-home" };

describe("command modules", () => {
  it("names exactly the top-level commands (and aliases) each module registers", async () => {
    for (const module of COMMAND_MODULES) {
      const program = new Command("iaas");
      await loadCommands(program, deps, [module]);
      expect(program.commands.flatMap((c) => [c.name(), ...c.aliases()]).sort()).toEqual([...module.commands].sort());
    }
  });

  it("loads the module of the command in argv, none for --version, all for help or an unknown word", () => {
    expect(commandModulesFor(["--url", "http://x", "-o", "json", "vm", "list"]).map((m) => m.commands[0])).toEqual(["vm"]);
    expect(commandModulesFor(["net", "ls"]).map((m) => m.commands[0])).toEqual(["network"]);
    expect(commandModulesFor(["--version"])).toEqual([]);
    expect(commandModulesFor(["--help"])).toBe(COMMAND_MODULES);
    expect(commandModulesFor(["frobnicate"])).toBe(COMMAND_MODULES);
    expect(firstCommandWord(["--context", "vm", "image", "ls"])).toBe("image");
    expect(firstCommandWord(["--output=json", "job"])).toBe("job");
  });
});

describe("completion tree", () => {
  it("comes from the program: every command path, its options, choices and resource arguments", async () => {
    const nodes = completionTree(await buildProgram(deps));
    const byPath = new Map(nodes.map((n) => [n.path, n]));
    expect(byPath.get("iaas vm")?.words).toEqual(expect.arrayContaining(["create", "list", "ls", "start", "snapshot", "snap"]));
    expect(byPath.get("iaas vm start")?.argument).toBe("vms");
    expect(byPath.get("iaas vm create")?.argument).toBeNull();
    expect(byPath.get("iaas vm create")?.values.get("--image")).toBe("images");
    expect(byPath.get("iaas")?.values.get("-o")).toEqual(["table", "json", "yaml"]);
    expect(byPath.get("iaas image show")?.argument).toBe("images");
    expect(byPath.get("iaas context use")?.argument).toBe("contexts");
    expect(byPath.has("iaas __complete")).toBe(false);
    expect(bashScript(nodes)).toContain("['iaas vm start']='vms'");
  });
});
