import { describe, expect, it } from "vitest";
import { parseIdList, runAsArgv } from "./qemuUser.js";

describe("runAsArgv", () => {
  it("drops to the user's uid, gid and groups, with no capabilities and no_new_privs, then execs the program", () => {
    expect(runAsArgv({ name: "iaas-qemu", uid: 990, gid: 990, groups: [992, 992, 44] })).toEqual([
      "setpriv",
      "--reuid=990",
      "--regid=990",
      "--groups=992,44",
      "--inh-caps=-all",
      "--bounding-set=-all",
      "--no-new-privs",
      "--",
    ]);
  });

  it("clears the supplementary groups when the user has none", () => {
    const argv = runAsArgv({ name: "nobody", uid: 65534, gid: 65534, groups: [] }, "/usr/bin/setpriv");
    expect(argv.slice(0, 4)).toEqual(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
    expect(argv.at(-1)).toBe("--");
  });

  it("refuses ids that are not numbers", () => {
    expect(() => runAsArgv({ name: "x", uid: -1, gid: 1, groups: [] })).toThrow(RangeError);
    expect(() => runAsArgv({ name: "x", uid: 1, gid: 1.5, groups: [] })).toThrow(RangeError);
  });
});

describe("parseIdList", () => {
  it("reads `id -G` output", () => {
    expect(parseIdList("65534 44  992\n")).toEqual([65534, 44, 992]);
    expect(parseIdList("\n")).toEqual([]);
    expect(() => parseIdList("100 wheel")).toThrow(/numeric/);
  });
});
