import { describe, expect, it } from "vitest";
import {
  ControlFrameReader,
  decodeControlRequest,
  decodeControlResponse,
  encodeControlFrame,
  MAX_CONTROL_FRAME_BYTES,
} from "./control-frame.ts";
import { FrameTooLargeError, MalformedMessageError } from "./errors.ts";

const text = (bodies: Buffer[]) => bodies.map((b) => b.toString("utf8"));

describe("control frames", () => {
  it("round-trips messages however the stream is cut", () => {
    const messages = [
      { id: 1, method: "a", params: { x: "é" } },
      { id: 2, method: "b" },
      { id: "s", method: "c" },
    ];
    const stream = Buffer.concat(messages.map(encodeControlFrame));
    for (const size of [1, 2, 3, 5, 7, stream.length]) {
      const reader = new ControlFrameReader();
      const got: string[] = [];
      for (let at = 0; at < stream.length; at += size)
        got.push(...text(reader.push(stream.subarray(at, at + size))));
      expect(got.map((t) => JSON.parse(t))).toEqual(messages);
    }
  });

  it("refuses a frame declaring more than MAX_CONTROL_FRAME_BYTES from its header alone", () => {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_CONTROL_FRAME_BYTES + 1);
    expect(() => new ControlFrameReader().push(header)).toThrow(FrameTooLargeError);
    expect(() => encodeControlFrame({ big: "x".repeat(MAX_CONTROL_FRAME_BYTES) })).toThrow(
      FrameTooLargeError,
    );
    const exact = Buffer.alloc(4);
    exact.writeUInt32BE(MAX_CONTROL_FRAME_BYTES);
    expect(new ControlFrameReader().push(exact)).toEqual([]);
  });

  it("checks the shape of requests and responses", () => {
    const bad = [
      '{"id":1}',
      '{"method":"x"}',
      '{"id":1.5,"method":"x"}',
      '{"id":1,"method":""}',
      "[]",
      "\u00ff",
      "{",
    ];
    for (const body of bad) {
      expect(() => decodeControlRequest(Buffer.from(body)), body).toThrow(MalformedMessageError);
    }
    expect(() => decodeControlRequest(Buffer.from([0x7b, 0xff, 0x7d]))).toThrow(MalformedMessageError);
    expect(decodeControlRequest(Buffer.from('{"id":"a","method":"m","params":[1]}'))).toEqual({
      id: "a",
      method: "m",
      params: [1],
    });
    expect(decodeControlResponse(Buffer.from('{"id":1,"progress":{"n":1}}'))).toEqual({
      id: 1,
      progress: { n: 1 },
    });
    expect(decodeControlResponse(Buffer.from('{"id":null,"error":{"name":"E","message":"m"}}'))).toEqual({
      id: null,
      error: { name: "E", message: "m" },
    });
    expect(() => decodeControlResponse(Buffer.from('{"id":null,"result":1}'))).toThrow(MalformedMessageError);
    expect(() => decodeControlResponse(Buffer.from('{"id":1}'))).toThrow(MalformedMessageError);
  });
});
