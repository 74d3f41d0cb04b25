/**
 * Every size limit of the wire format, named once. Decoders check each declared length against
 * these (and against the bytes remaining) before allocating or slicing anything.
 */

/**
 * Oldest protocol version this build speaks.
 * - v1: envelope (version, type, sender, payload, signature), frame with per-item hop counts,
 *   message types 1..16 (see types.ts), certificates, revocations, commands and joins; later
 *   types 17..18 (membership sync), which a v1 build without them refuses as unknown.
 */
export const PROTOCOL_VERSION_MIN = 1;
/** Newest protocol version this build speaks (see PROTOCOL_VERSION_MIN for what each added). */
export const PROTOCOL_VERSION_MAX = 1;
/** The version sealEnvelope writes. */
export const PROTOCOL_VERSION = 1;
/** Link frame format version; bumped independently of the envelope version. */
export const FRAME_VERSION = 1;

/** Bytes in an ed25519 public key (also the key id on the wire). */
export const PUBLIC_KEY_BYTES = 32;
/** Bytes in an ed25519 secret key as libsodium stores it (seed || public key). */
export const SECRET_KEY_BYTES = 64;
/** Bytes in the seed from which an ed25519 key pair is derived. */
export const SEED_BYTES = 32;
/** Bytes in an ed25519 signature. */
export const SIGNATURE_BYTES = 64;
/** Bytes in a message id: the first bytes of the envelope signature. */
export const MESSAGE_ID_BYTES = 16;
/** Bytes in a command nonce. */
export const NONCE_BYTES = 16;
/** Bytes in a join-token MAC (HMAC-SHA256 / crypto_auth output). */
export const MAC_BYTES = 32;
/** Bytes in a join-token id. */
export const TOKEN_ID_BYTES = 16;

/** Fixed envelope bytes before the payload: version u8, type u16, sender 32, payload length u32. */
export const ENVELOPE_HEADER_BYTES = 1 + 2 + PUBLIC_KEY_BYTES + 4;
/** Largest whole envelope accepted (64 KiB). */
export const MAX_ENVELOPE_BYTES = 64 * 1024;
/** Largest payload that still fits an envelope under MAX_ENVELOPE_BYTES. */
export const MAX_PAYLOAD_BYTES = MAX_ENVELOPE_BYTES - ENVELOPE_HEADER_BYTES - SIGNATURE_BYTES;

/** Largest link frame accepted (256 KiB). */
export const MAX_FRAME_BYTES = 256 * 1024;
/** Most items (envelopes) in one frame. */
export const MAX_FRAME_ITEMS = 64;
/** Largest hop budget a sender may give an item. */
export const MAX_HOPS = 16;

/** Longest UTF-8 string field (bytes) unless a field says otherwise. */
export const MAX_STRING_BYTES = 1024;
/** Longest list field unless a field says otherwise. */
export const MAX_LIST_ITEMS = 256;
/** Longest label (compartment part, tier, command action, node name): bytes. */
export const MAX_LABEL_BYTES = 63;
/** Deepest compartment path (e.g. region/dc/rack/host). */
export const MAX_COMPARTMENT_DEPTH = 8;
/** Most tiers on one certificate or selector. */
export const MAX_TIERS = 32;
/** Most roles on one certificate (the closed list has five). */
export const MAX_ROLES = 8;
/** Longest broadcast topic (bytes). */
export const MAX_TOPIC_BYTES = 128;
/** Longest transport address string (bytes). */
export const MAX_ADDR_BYTES = 256;
/** Most message ids in one Digest or Want. */
export const MAX_DIGEST_IDS = 1024;
/** Most entries in one MemberDigest (40 bytes each: a key and a u64 incarnation). */
export const MAX_SYNC_DIGEST_ENTRIES = 1024;
/** Bytes of a MemberDigest's hash of the notice set (a truncated sha256). */
export const NOTICE_SET_HASH_BYTES = 16;
/** Most entries in one MemberWant. */
export const MAX_SYNC_WANT_ENTRIES = 256;
/** Most command arguments. */
export const MAX_COMMAND_ARGS = 64;
/** Longest single command argument (bytes). */
export const MAX_ARG_BYTES = 4096;
/** Most node keys in a command selector. */
export const MAX_SELECTOR_NODES = 256;
/** Largest stdout or stderr carried in one Result (bytes); longer output is truncated. */
export const MAX_OUTPUT_BYTES = 24 * 1024;
/** Longest revocation reason (bytes). */
export const MAX_REASON_BYTES = 256;
/** Most embedded envelopes in a join response list (chain, revocations). */
export const MAX_BUNDLE_ENVELOPES = 64;
/** Most members or peers in a join response. */
export const MAX_BUNDLE_MEMBERS = 256;
/** Largest sealed-secrets blob in a join response (bytes). */
export const MAX_SEALED_BYTES = 4096;
/** Longest certificate chain verifyChain walks (root cert, ring 1, ring 2, operator...). */
export const MAX_CHAIN_LENGTH = 8;
