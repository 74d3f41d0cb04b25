import { describe, expect, it } from "vitest";
import { Suspicion, suspicionMinTimeoutMs, suspicionTimeoutMs } from "./suspicion.ts";

describe("suspicionMinTimeoutMs", () => {
  it("is suspicionMult × max(1, log10 n) × interval, the scale kept to 1/1000", () => {
    expect(suspicionMinTimeoutMs(4, 0, 1000)).toBe(4000);
    expect(suspicionMinTimeoutMs(4, 5, 1000)).toBe(4000); // log10 5 < 1
    expect(suspicionMinTimeoutMs(4, 50, 1000)).toBe(6792); // 4 × 1.698 s
    expect(suspicionMinTimeoutMs(4, 1000, 1000)).toBe(12_000);
  });
});

describe("suspicionTimeoutMs", () => {
  it("starts at max and falls logarithmically to min at k confirmations", () => {
    expect(suspicionTimeoutMs(0, 2, 4000, 24_000)).toBe(24_000);
    // 24000 − 20000 × ln 2 / ln 3 = 11381.40…
    expect(suspicionTimeoutMs(1, 2, 4000, 24_000)).toBe(11_381);
    expect(suspicionTimeoutMs(2, 2, 4000, 24_000)).toBe(4000);
    // 40752 − 33960 × ln 2 / ln 3 = 19325.62…
    expect(suspicionTimeoutMs(1, 2, 6792, 40_752)).toBe(19_325);
  });

  it("is min at once when no confirmations are expected", () => {
    expect(suspicionTimeoutMs(0, 0, 4000, 24_000)).toBe(4000);
  });
});

describe("Suspicion", () => {
  it("counts distinct confirmers other than the accuser, up to k, and moves the deadline", () => {
    const s = new Suspicion("a", 2, 4000, 24_000, 10_000);
    expect(s.deadlineMs()).toBe(34_000);
    expect(s.confirm("a")).toBe(false); // the accuser is not a confirmation
    expect(s.confirm("b")).toBe(true);
    expect(s.confirm("b")).toBe(false); // nor is a repeat
    expect(s.deadlineMs()).toBe(21_381);
    expect(s.confirm("c")).toBe(true);
    expect(s.deadlineMs()).toBe(14_000);
    expect(s.confirm("d")).toBe(false); // k reached
    expect(s.confirmations()).toBe(2);
  });
});
