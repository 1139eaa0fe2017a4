import NIOCore
import TallyCore
import TallyCrypto
import TallyProtocol
import TallyStore

/// The in-process path: the same requests and the same answers as the socket, for callers
/// inside `tallyd` (the back office). Every request goes through the socket's rules in the
/// same order as `ConnectionHandler.dispatch`: shutdown, revocation, the role matrix,
/// replication's write refusal; reads run on the read threads (`Execute.read`), writes and
/// imports through the one writer. Answers are the wire's lines (`OK {…}`, `ERR CODE {…}`).
extension TallyServer {
  /// Checks a key and its secret the way AUTH does: an HMAC over a nonce made here, checked
  /// by the `Authenticator`, with failures counted in the AUTH throttle for `address`.
  /// Answers the principal, or `AUTH_FAILED` (reason `RATE_LIMITED` once the address is over
  /// the AUTH limit: no lookup is made then).
  public func signIn(key: String, secret: String, address: String) async -> Result<
    Principal, WireError
  > {
    let server = context
    if server.shuttingDown.load(ordering: .relaxed) {
      return .failure(WireError(.shuttingDown, "the server is shutting down"))
    }
    if server.throttle.isLimited(address, now: Writer.now()) {
      server.logger.warning("sign-in refused: rate limited", metadata: ["from": "\(address)"])
      return .failure(
        WireError(
          .authFailed, "too many failed attempts from this address; retry later",
          reason: "RATE_LIMITED"))
    }
    let nonce = Secrets.random(32).hex
    let mac = Secrets.hmacSHA256(key: Array(secret.utf8), message: Array(nonce.utf8)).hex
    let principal: Principal?
    do {
      principal = try await server.readPool.runIfActive(eventLoop: group.next()) {
        try Authenticator.check(key: key, mac: mac, nonce: nonce, reader: server.reader)
      }.get()
    } catch {
      server.logger.error("sign-in lookup failed", metadata: ["error": "\(error)"])
      principal = nil
    }
    guard let principal else {
      server.info.authFailures.wrappingAdd(1, ordering: .relaxed)
      server.throttle.recordFailure(address, now: Writer.now())
      server.logger.warning(
        "sign-in failed", metadata: ["from": "\(address)", "key": "\(key.prefix(64))"])
      return .failure(WireError(.authFailed, "unknown key, revoked key or wrong secret"))
    }
    server.logger.info(
      "signed in",
      metadata: ["from": "\(address)", "key": "\(principal.keyId)", "role": "\(principal.role)"])
    return .success(principal)
  }

  /// Whether the key was revoked while this server runs (sessions made with it end).
  public func isRevoked(_ keyId: String) -> Bool { context.isRevoked(keyId) }

  /// The signing key's verifier key (`tally vkey`), when the ledger signs checkpoints.
  public var verifierKey: String? { context.reader.verifierKey }

  /// The last `tally verify` of this data directory (`verify-last.json`), nil if none.
  public func lastVerify() throws(StoreError) -> VerifyRecord? {
    try VerifyRecord.read(fromDirectory: dataPath)
  }

  /// Answers `request` as `principal`, exactly as a connection authenticated with the same
  /// key would: the answer line without its newline.
  public func respond(to request: Request, as principal: Principal) async -> String {
    let server = context
    if server.shuttingDown.load(ordering: .relaxed) {
      return WireError(.shuttingDown, "the server is shutting down").line
    }
    if server.isRevoked(principal.keyId) {
      return WireError(.authFailed, "the key was revoked", reason: "KEY_REVOKED").line
    }
    switch request {
    case .ping, .quit, .auth, .replicaPromote:
      // Connection verbs; a promotion is an admin's socket request.
      return WireError(
        .badRequest, "this request is served on the socket only", reason: "SOCKET_ONLY"
      ).line
    default: break
    }
    if let e = Access.check(request, principal.role) { return e.line }
    if request.isWrite, let refusal = server.replication.writeRefusal(server.config) {
      return refusal.line
    }
    if case .reconImport(let r) = request {
      return await importStatement(request, r)
    }
    if request.isWrite {
      switch ConnectionHandler.writePlan(request, principal) {
      case .answer(let line): return line
      case .work(let work, let batch): return await submit(work, request, batch)
      }
    }
    do {
      return try await server.readPool.runIfActive(eventLoop: group.next()) {
        try Execute.read(request, principal, server.reader, server.info)
      }.get()
    } catch {
      server.logger.error("read failed", metadata: ["error": "\(error)"])
      return StoreFailure.wireError(Ledger.storeError(error), write: false).line
    }
  }

  /// RECON.IMPORT: prepared on a read thread, then appended by the writer, as on a socket.
  func importStatement(_ request: Request, _ r: ReconImportRequest) async -> String {
    let server = context
    let prepared: Result<WriteWork, Rejection>
    do {
      prepared = try await server.readPool.runIfActive(eventLoop: group.next()) {
        () throws(StoreError) -> Result<WriteWork, Rejection> in
        try ConnectionHandler.prepareImport(r, server)
      }.get()
    } catch {
      server.logger.error("statement import failed to start", metadata: ["error": "\(error)"])
      return StoreFailure.wireError(Ledger.storeError(error), write: true).line
    }
    switch prepared {
    case .failure(let rej): return WireError(rej).line
    case .success(let work): return await submit(work, request, [])
    }
  }

  /// How many times a write waits for room in a full writer queue before it is answered
  /// `INTERNAL`: each wait ends when the writer next takes jobs, so a working writer makes
  /// room long before this (the queue holds at most `--max-queue` commands).
  static let queueWaitsMax = 10_000

  /// Queues `work` for the writer and answers its result, formatted as the socket formats
  /// it; when the queue is full, waits for the writer to take jobs and tries again
  /// (backpressure, as a connection does).
  func submit(
    _ work: WriteWork, _ request: Request, _ batch: [Result<EntrySpec, Rejection>]
  ) async -> String {
    let server = context
    let result = await withCheckedContinuation {
      (done: CheckedContinuation<Result<WriteResult, WireError>, Never>) in
      push(work, attempt: 0, done)
    }
    switch result {
    case .success(let r): return ConnectionHandler.writeLine(r, request, batch, server)
    case .failure(let e): return e.line
    }
  }

  private func push(
    _ work: WriteWork, attempt: Int,
    _ done: CheckedContinuation<Result<WriteResult, WireError>, Never>
  ) {
    let queue = context.writer.queue
    let job = WriteJob(work: work) { result in done.resume(returning: .success(result)) }
    switch queue.tryPush(job) {
    case .queued: return
    case .closed:
      done.resume(returning: .failure(WireError(.shuttingDown, "the server is shutting down")))
    case .full:
      if attempt >= Self.queueWaitsMax {
        context.logger.error("the writer queue stayed full; an in-process write was refused")
        done.resume(
          returning: .failure(
            WireError(.internal, "the writer stayed busy; the write was not applied")))
        return
      }
      queue.notifyWhenSpace { [self] in push(work, attempt: attempt + 1, done) }
    }
  }
}
