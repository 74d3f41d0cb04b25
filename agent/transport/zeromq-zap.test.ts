import { describe, expect, it } from "vitest";
import { generateIdentity, keyHex } from "../../protocol/index.ts";
import { curvePublicKeyOf } from "./zeromq-keys.ts";
import { answerZap, type ZapPolicy } from "./zeromq-zap.ts";

/** A ZAP request as the handler's Router receives it. */
function request(mechanism: string, credentials: Buffer[], domain = "enjin", version = "1.0"): Buffer[] {
  const b = (s: string) => Buffer.from(s);
  return [
    b("rid"),
    b(""),
    b(version),
    b("7"),
    b(domain),
    b("127.0.0.1"),
    b(""),
    b(mechanism),
    ...credentials,
  ];
}

describe("zap decision", () => {
  const member = generateIdentity(new Uint8Array(32).fill(3));
  const memberCurve = Buffer.from(curvePublicKeyOf(member.publicKey));
  const policy = (over: Partial<ZapPolicy> = {}): ZapPolicy => ({
    authorize: (k) => keyHex(k) === keyHex(member.publicKey),
    revokedCurve: new Set(),
    domain: "enjin",
    ...over,
  });
  const status = (reply: Array<Buffer | string> | undefined) => reply?.slice(4, 7).map(String);

  it("admits a member's CURVE key, echoing the request id, with its ed25519 key as user id", () => {
    const answer = answerZap(request("CURVE", [memberCurve]), policy());
    expect(answer.counter).toBe("admitted-peer");
    expect(answer.admittedCurveHex).toBe(memberCurve.toString("hex"));
    expect(answer.reply?.slice(0, 4).map(String)).toEqual(["rid", "", "1.0", "7"]);
    expect(status(answer.reply)).toEqual(["200", "OK", keyHex(member.publicKey)]);
  });

  it("refuses, with a reason, strangers, revoked keys, other mechanisms, domains and versions", () => {
    const stranger = Buffer.from(curvePublicKeyOf(generateIdentity().publicKey));
    const revoked = new Set([memberCurve.toString("hex")]);
    const cases: Array<[Buffer[], ZapPolicy, string, string]> = [
      [request("CURVE", [stranger]), policy(), "refused-peer-unauthorized", "400"],
      [request("CURVE", [memberCurve]), policy({ revokedCurve: revoked }), "refused-peer-revoked", "400"],
      [request("NULL", []), policy(), "refused-peer-not-curve", "400"],
      [request("PLAIN", [Buffer.from("u"), Buffer.from("p")]), policy(), "refused-peer-not-curve", "400"],
      [request("CURVE", [Buffer.alloc(31)]), policy(), "refused-peer-bad-key", "400"],
      [request("CURVE", [memberCurve], "other"), policy(), "refused-peer-bad-request", "400"],
      [request("CURVE", [memberCurve], "enjin", "2.0"), policy(), "refused-peer-bad-request", "500"],
      [
        request("CURVE", [memberCurve]),
        policy({
          authorize: () => {
            throw new Error("boom");
          },
        }),
        "refused-peer-authorize-error",
        "400",
      ],
    ];
    for (const [req, p, counter, code] of cases) {
      const answer = answerZap(req, p);
      expect(answer.counter).toBe(counter);
      expect(answer.admittedCurveHex).toBeUndefined();
      expect(status(answer.reply)?.[0]).toBe(code);
    }
  });

  it("cannot answer a request without routing id, delimiter and request id, and says so", () => {
    expect(answerZap([Buffer.from("rid")], policy())).toEqual({
      reply: undefined,
      counter: "refused-peer-bad-request",
    });
  });
});
