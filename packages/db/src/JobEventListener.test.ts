import { describe, expect, it } from "vitest";
import { parseJobEventNotice } from "./JobEventListener.js";

describe("parseJobEventNotice", () => {
  const id = "0b8f6a52-3c1e-4d7a-9f3e-2a1b4c5d6e7f";

  it("reads the job id, the sequence number and the final marker the trigger sends", () => {
    expect(parseJobEventNotice(`${id}:12`)).toEqual({ jobId: id, seq: 12, final: false });
    expect(parseJobEventNotice(`${id}:3:final`)).toEqual({ jobId: id, seq: 3, final: true });
  });

  it("ignores anything else on the channel", () => {
    for (const payload of ["", id, `${id}:`, `${id}:x`, `${id}:1:done`, `not-a-uuid:1`, `${id}:1:final:extra`]) {
      expect(parseJobEventNotice(payload)).toBeNull();
    }
  });
});
