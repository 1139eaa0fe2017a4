import CLMDB
import Glibc
import TallyCore
import TallyCrypto

/// The ledger's checkpoint signing key (Ed25519), kept in `signing.key` in the data
/// directory, outside the log (never exported, never hashed). The key's name is the
/// checkpoints' origin line. Mode 0600; written once, at `init` (or at the first read-write
/// open of a directory made before keys existed).
enum SigningKey {
  static let fileName = "signing.key"

  /// A default origin unique to this ledger: `tally.ledger/` and 8 random hex digits.
  static func defaultOrigin() -> String { "tally.ledger/" + Secrets.random(4).hex }

  static func load(directory: String) throws(StoreError) -> NoteSigner? {
    let path = directory + "/" + fileName
    guard let f = fopen(path, "r") else {
      if errno == ENOENT { return nil }
      throw .io("cannot read \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(f) }
    var buf = [CChar](repeating: 0, count: 512)
    guard fgets(&buf, 512, f) != nil else { throw .corrupt("\(path) is empty") }
    let bytes = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    let line = String(decoding: bytes, as: UTF8.self).trimmingSuffix("\n")
    guard let signer = NoteSigner(skey: line) else {
      throw .corrupt("\(path) does not hold a signed-note private key")
    }
    return signer
  }

  static func create(
    directory: String, origin: String, fileName: String = fileName, signer given: NoteSigner? = nil
  ) throws(StoreError) -> NoteSigner {
    guard let signer = given ?? NoteSigner.generate(name: origin) else {
      throw .io("origin \"\(origin)\" is not a valid key name (no spaces, no '+')")
    }
    let path = directory + "/" + fileName
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
    guard fd >= 0 else { throw .io("cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    let text = signer.skey + "\n"
    let n = text.withCString { write(fd, $0, strlen($0)) }
    guard n == text.utf8.count, fsync(fd) == 0 else {
      throw .io("cannot write \(path): \(String(cString: strerror(errno)))")
    }
    return signer
  }
}

extension String {
  fileprivate func trimmingSuffix(_ s: String) -> String {
    hasSuffix(s) ? String(dropLast(s.count)) : self
  }
}

/// A signed checkpoint (C2SP tlog-checkpoint as a signed note).
public struct Checkpoint: Sendable, Equatable {
  public var size: UInt64
  public var root: Hash32
  public var chain: Hash32
  /// The signed note text: origin, size, base64 root, `chain <hex>`, blank line, signature.
  public var note: String
}

extension LedgerQuerying {
  /// The verifier key (`name+hash+base64`), when the directory has a signing key.
  public var verifierKey: String? { reader.signer?.vkey }

  /// A checkpoint of the tree of `size` events (default: the head), signed now. Nil when
  /// the directory has no signing key yet (open it read-write once).
  public func checkpoint(size: UInt64?) throws(StoreError) -> Result<Checkpoint, ProofError>? {
    guard let signer = reader.signer else { return nil }
    return try reader.read { t -> Result<Checkpoint, ProofError> in
      let head = try Ledger.readHead(t, reader.dbs).seq
      let n = size ?? head
      guard n <= head else { return .failure(.outOfRange("size \(n) > head \(head)")) }
      return .success(try Checkpoint.sign(t, reader.dbs, signer, size: n))
    }
  }
}

extension Checkpoint {
  /// Signs the tree of the first `size` events as read in `t` (size ≤ head).
  static func sign(_ t: Txn, _ dbs: DBs, _ signer: NoteSigner, size n: UInt64) throws
    -> Checkpoint
  {
    let h = SHA256Hasher()
    let root = try Merkle.root(h, size: n) { try Tree.subtree(t, dbs, level: $0, index: $1) }
    var chain = Hash32.zero
    if n > 0 {
      guard let v = try t.get(dbs.hashes, u64: n), v.count == 64 else {
        throw StoreError.corrupt("no hashes for seq \(n)")
      }
      chain = Hash32(raw: UnsafeRawBufferPointer(rebasing: v[32..<64]))
    }
    let body = Note.checkpoint(
      origin: signer.name, size: n, root: root, extensions: ["chain " + chain.hex])
    guard let note = signer.sign(body) else {
      throw StoreError.corrupt("could not sign the checkpoint")
    }
    return Checkpoint(size: n, root: root, chain: chain, note: note)
  }
}

extension LedgerQuerying {
  /// Kept checkpoints in size order after `after`, at most `limit`.
  public func checkpoints(after: UInt64, limit: Int) throws(StoreError) -> [(UInt64, String)] {
    guard let dbi = reader.dbs.checkpoints else { return [] }
    return try reader.read { t in
      let c = try t.cursor(dbi)
      defer { c.close() }
      var out = [(UInt64, String)]()
      let (start, o) = after.addingReportingOverflow(1)
      if o { return out }
      var row = try withBytes(of: start.bigEndian) { (k) throws(StoreError) in
        try c.get(MDB_SET_RANGE, key: k)
      }
      while let (k, v) = row, out.count < limit {
        guard k.count == 8 else { throw StoreError.corrupt("a checkpoint key of \(k.count) bytes") }
        out.append(
          (
            UInt64(bigEndian: k.loadUnaligned(as: UInt64.self)),
            String(decoding: v, as: UTF8.self)
          ))
        row = try c.get(MDB_NEXT)
      }
      return out
    }
  }
}

extension Ledger {
  /// Signs a checkpoint of the head and keeps it (once per size). Nil when nothing new.
  public func keepCheckpoint() throws(StoreError) -> Checkpoint? {
    precondition(!readOnly, "keepCheckpoint on a read-only ledger")
    guard let dbi = dbs.checkpoints, head.seq > 0,
      case .success(let c)? = try checkpoint(size: nil)
    else { return nil }
    let kept = try writeAux { (t) throws(StoreError) -> Bool in
      if try t.get(dbi, u64: c.size) != nil { return false }
      try withBytes(Array(c.note.utf8)) { (v) throws(StoreError) in
        try t.put(dbi, u64: c.size, v)
      }
      return true
    }
    return kept ? c : nil
  }
}

/// The outcome of a signing-key rotation.
public struct KeyRotation: Sendable, Equatable {
  public var oldVerifierKey: String
  public var newVerifierKey: String
  /// A checkpoint of the head signed by both keys, kept with the other checkpoints.
  public var handover: Checkpoint
  /// Where the retired private key was kept (in the data directory).
  public var retiredKeyFile: String
}

extension Ledger {
  /// Replaces the checkpoint signing key by a new one with the same name (the origin stays
  /// the log's identity; the key hash changes). The head is signed by both keys and that
  /// handover checkpoint kept, so a verifier who trusts the old key can check that the new
  /// key signed the same tree. The old private key is kept as
  /// `signing.key.retired-<key hash>`. Takes effect for this directory's next open; the
  /// caller (the CLI, which holds the writer lock) exits afterwards.
  public func rotateSigningKey() throws(StoreError) -> KeyRotation {
    precondition(!readOnly, "rotateSigningKey on a read-only ledger")
    guard let old = reader.signer, let dbi = dbs.checkpoints else {
      throw .corrupt("this directory has no signing key")
    }
    guard let new = NoteSigner.generate(name: old.name) else {
      throw .io("cannot generate a signing key")
    }
    guard case .success(let c)? = try checkpoint(size: nil),
      let signedByNew = new.sign(
        Note.checkpoint(
          origin: old.name, size: c.size, root: c.root, extensions: ["chain " + c.chain.hex]))
    else { throw .corrupt("cannot sign the handover checkpoint") }
    // Both signature lines under one text: the old key's note, then the new key's line.
    let body = Note.checkpoint(
      origin: old.name, size: c.size, root: c.root, extensions: ["chain " + c.chain.hex])
    let note = c.note + String(signedByNew.dropFirst(body.count + 1))
    let handover = Checkpoint(size: c.size, root: c.root, chain: c.chain, note: note)

    // The new key file first (synced), then the old one retired, then the new one in place.
    let retired = SigningKey.fileName + ".retired-" + old.vkey.split(separator: "+")[1]
    let staged = SigningKey.fileName + ".new"
    _ = unlink(path + "/" + staged)
    _ = try SigningKey.create(directory: path, origin: old.name, fileName: staged, signer: new)
    guard rename(path + "/" + SigningKey.fileName, path + "/" + retired) == 0,
      rename(path + "/" + staged, path + "/" + SigningKey.fileName) == 0
    else { throw .io("cannot replace \(SigningKey.fileName): \(String(cString: strerror(errno)))") }
    try syncDirectory(path)
    try writeAux { (t) throws(StoreError) in
      try withBytes(Array(note.utf8)) { (v) throws(StoreError) in try t.put(dbi, u64: c.size, v) }
    }
    return KeyRotation(
      oldVerifierKey: old.vkey, newVerifierKey: new.vkey, handover: handover,
      retiredKeyFile: retired)
  }
}
