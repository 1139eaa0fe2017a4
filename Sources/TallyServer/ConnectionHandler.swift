import Logging
import NIOCore
import TallyCore
import TallyCrypto
import TallyProtocol
import TallyReconcile
import TallyStore

/// Sent down every connection's pipeline when the server begins a graceful shutdown.
struct ShutdownEvent: Sendable {}

/// One connection: answers requests in order, pipelined. Reads run concurrently on the read
/// threads and writes go to the single writer; a read never overtakes an earlier write on
/// the same connection (it waits for it), so a client sees its own acknowledged writes.
/// All state lives on the channel's event loop.
final class ConnectionHandler: ChannelDuplexHandler {
  typealias InboundIn = Frame
  typealias OutboundIn = ByteBuffer
  typealias OutboundOut = ByteBuffer

  /// A response position, filled when the answer is known; lines leave in slot order.
  final class Slot {
    var line: String?
    var closeAfter = false
  }

  enum Kind { case read, write, barrier }

  struct Pending {
    var slot: Slot
    var request: Request
    var kind: Kind
  }

  let server: ServerContext
  var session: Session
  var address = "?"
  var slots = CircularBuffer<Slot>() {
    // Keeps the server's in-flight count (a metric) equal to the sum of the slots.
    didSet {
      let d = slots.count - slotsCounted
      if d != 0 {
        server.info.inflight.wrappingAdd(d, ordering: .relaxed)
        slotsCounted = slots.count
      }
    }
  }
  var slotsCounted = 0
  /// The role counted in `connectionsByRole` once AUTH succeeded.
  var countedRole: Role?
  var waiting = CircularBuffer<Pending>()
  var running = 0
  var runningKind = Kind.read
  var writerFull = false
  var readPending = false
  var stopReading = false
  var shuttingDown = false
  var closing = false
  var counted = false
  var lastActivity = NIODeadline.now()
  var idleTask: Scheduled<Void>?
  var authTask: Scheduled<Void>?
  var context: ChannelHandlerContext!

  init(server: ServerContext) {
    self.server = server
    session = Session(
      nonce: Secrets.random(32).hex, authFailuresMax: server.config.authFailuresPerConnectionMax)
  }

  /// Stop reading the socket: too many answers owed, the writer's queue is full, or the
  /// client is not reading its answers (the socket's send buffer is past its high mark).
  var paused: Bool {
    stopReading || writerFull || slots.count >= server.config.inflightPerConnectionMax
      || !context.channel.isWritable
  }

  // MARK: lifecycle

  func channelActive(context: ChannelHandlerContext) {
    self.context = context
    address = context.remoteAddress?.ipAddress ?? "?"
    let info = server.info
    let n = info.connections.wrappingAdd(1, ordering: .relaxed).newValue
    counted = true
    info.connectionsTotal.wrappingAdd(1, ordering: .relaxed)
    if n > server.config.connectionsMax {
      server.logger.warning("connection refused: too many", metadata: ["from": "\(address)"])
      respondAndClose(
        WireError(
          .tooManyConnections, "the server has \(server.config.connectionsMax) connections open"
        ).line)
      return
    }
    if server.shuttingDown.load(ordering: .relaxed) {
      respondAndClose(WireError(.shuttingDown, "the server is shutting down").line)
      return
    }
    server.channels.withLock { $0[ObjectIdentifier(context.channel)] = context.channel }
    let hello = JSONObject([
      ("server", .string("tally")), ("version", .number("1")), ("nonce", .string(session.nonce)),
    ])
    var buf = context.channel.allocator.buffer(capacity: 128)
    buf.writeString("HELLO " + JSONWriter.serialize(.object(hello)) + "\n")
    context.writeAndFlush(wrapOutboundOut(buf), promise: nil)
    scheduleIdle(context)
    let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
    authTask = context.eventLoop.scheduleTask(
      in: .seconds(server.config.authTimeoutSeconds)
    ) {
      let h = bound.value
      if h.session.principal == nil && !h.closing {
        h.respondAndClose(
          WireError(.timeout, "not authenticated in time", reason: "AUTH_TIMEOUT").line)
      }
    }
    context.fireChannelActive()
  }

  func channelInactive(context: ChannelHandlerContext) {
    closing = true
    idleTask?.cancel()
    authTask?.cancel()
    if counted {
      server.info.connections.wrappingSubtract(1, ordering: .relaxed)
      counted = false
    }
    if slotsCounted != 0 {
      server.info.inflight.wrappingSubtract(slotsCounted, ordering: .relaxed)
      slotsCounted = 0
    }
    if let role = countedRole {
      server.info.connectionsByRole.withLock { $0[role, default: 0] -= 1 }
      countedRole = nil
    }
    server.channels.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(context.channel)) }
    context.fireChannelInactive()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    server.logger.debug("connection error", metadata: ["from": "\(address)", "error": "\(error)"])
    closing = true
    context.close(promise: nil)
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is ShutdownEvent {
      beginShutdown()
      return
    }
    context.fireUserInboundEventTriggered(event)
  }

  /// Stop reading; answer what waits, and whatever the decoder still delivers, with
  /// SHUTTING_DOWN; finish what runs; close once every answer is out.
  func beginShutdown() {
    shuttingDown = true
    stopReading = true
    while let p = waiting.popFirst() {
      p.slot.line = WireError(.shuttingDown, "the server is shutting down").line
    }
    flushReady()
  }

  // MARK: timeouts

  func scheduleIdle(_ context: ChannelHandlerContext) {
    let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
    let idle = TimeAmount.seconds(server.config.idleTimeoutSeconds)
    idleTask = context.eventLoop.scheduleTask(deadline: lastActivity + idle) {
      let h = bound.value
      if h.closing { return }
      if h.running > 0 || !h.slots.isEmpty || NIODeadline.now() < h.lastActivity + idle {
        if h.running > 0 || !h.slots.isEmpty { h.lastActivity = NIODeadline.now() }
        h.scheduleIdle(h.context)
        return
      }
      h.respondAndClose(WireError(.timeout, "idle for too long", reason: "IDLE_TIMEOUT").line)
    }
  }

  // MARK: backpressure

  func read(context: ChannelHandlerContext) {
    if paused {
      readPending = true
    } else {
      context.read()
    }
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    if context.channel.isWritable {
      pump()
      resumeIfPossible()
    }
    context.fireChannelWritabilityChanged()
  }

  func resumeIfPossible() {
    if readPending && !paused && !closing {
      readPending = false
      context.read()
    }
  }

  // MARK: requests

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let frame = unwrapInboundIn(data)
    if closing { return }
    if shuttingDown || server.shuttingDown.load(ordering: .relaxed) {
      // Read before the socket stopped being read: answered, never applied.
      let slot = Slot()
      slot.line = WireError(.shuttingDown, "the server is shutting down").line
      slots.append(slot)
      flushReady()
      return
    }
    if session.state == .closing { return }
    lastActivity = NIODeadline.now()
    server.info.requests.wrappingAdd(1, ordering: .relaxed)
    let slot = Slot()
    slots.append(slot)
    switch frame {
    case .tooLong:
      slot.line =
        WireError(
          .lineTooLong, "request line longer than \(server.config.lineBytesMax) bytes",
          details: ["limit": String(server.config.lineBytesMax)]
        ).line
      flushReady()
    case .line(let buf):
      switch RequestParser.parse(
        buf.readableBytesView, batchEntriesMax: server.config.batchEntriesMax)
      {
      case .failure(let e):
        slot.line = e.line
        flushReady()
      case .success(let request):
        let kind: Kind =
          switch request {
          // An import is parsed off the writer before it is queued: it runs alone so that
          // writes after it on this connection cannot be applied before it.
          case .auth, .quit, .reconImport, .replicaPromote: .barrier
          default: request.isWrite ? .write : .read
          }
        waiting.append(Pending(slot: slot, request: request, kind: kind))
        pump()
      }
    }
  }

  /// Dispatches waiting requests in order while they may run alongside what is running.
  /// Nothing new starts while the client is not reading: its answers would only pile up.
  func pump() {
    if !shuttingDown && server.shuttingDown.load(ordering: .relaxed) {
      // The signal landed; this connection's shutdown event may still be on its way.
      beginShutdown()
      return
    }
    while let next = waiting.first {
      if closing || shuttingDown || !context.channel.isWritable { return }
      // One read of the socket can hold thousands of requests: start at most the in-flight
      // limit at a time, so answers cannot pile up faster than they leave.
      if running >= server.config.inflightPerConnectionMax { return }
      // A barrier (AUTH, QUIT) runs alone: nothing before it may still run, nothing after
      // it starts until it is decided. Reads run together, writes run together.
      if running > 0
        && (next.kind == .barrier || runningKind == .barrier || next.kind != runningKind)
      {
        return
      }
      if next.kind == .write && writerFull { return }
      _ = waiting.popFirst()
      if !dispatch(next) {
        // The writer queue is full: keep the request first in line, wait for space.
        waiting.prepend(next)
        return
      }
    }
  }

  /// False only when a write could not be queued (backpressure).
  func dispatch(_ p: Pending) -> Bool {
    switch session.admit(p.request) {
    case .drop:
      p.slot.line = nil
      slots.removeAll { $0 === p.slot }
      return true
    case .refuse(let e):
      p.slot.line = e.line
      flushReady()
      return true
    case .quit:
      p.slot.line = "OK {}"
      p.slot.closeAfter = true
      stopReading = true
      waiting.removeAll()
      // Requests after QUIT get no answer: drop their slots.
      while let last = slots.last, last !== p.slot { _ = slots.popLast() }
      flushReady()
      return true
    case .authenticate(let key, let mac):
      startAuth(p.slot, key: key, mac: mac)
      return true
    case .run(let principal):
      if let principal, server.isRevoked(principal.keyId) {
        p.slot.line = session.revoked().line
        p.slot.closeAfter = true
        stopReading = true
        waiting.removeAll()
        flushReady()
        return true
      }
      if case .replicaPromote = p.request {
        startPromote(p)
        return true
      }
      if p.request.isWrite, let refusal = server.replication.writeRefusal(server.config) {
        p.slot.line = refusal.line
        flushReady()
        return true
      }
      if case .reconImport(let r) = p.request {
        startImport(p, r)
        return true
      }
      if p.kind == .write { return startWrite(p, principal) }
      startRead(p, principal)
      return true
    }
  }

  func finished() {
    running -= 1
    flushReady()
    pump()
  }

  func startAuth(_ slot: Slot, key: String, mac: String) {
    running += 1
    runningKind = .barrier
    let now = Writer.now()
    let server = self.server
    let address = self.address
    if server.throttle.isLimited(address, now: now) {
      authDone(slot, key: key, principal: nil, rateLimited: true)
      return
    }
    let nonce = session.nonce
    let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
    let slotB = NIOLoopBound(slot, eventLoop: context.eventLoop)
    let f = server.readPool.runIfActive(eventLoop: context.eventLoop) {
      try Authenticator.check(key: key, mac: mac, nonce: nonce, reader: server.reader)
    }
    f.whenComplete { result in
      let h = bound.value
      switch result {
      case .success(let p): h.authDone(slotB.value, key: key, principal: p, rateLimited: false)
      case .failure(let e):
        h.server.logger.error("auth lookup failed", metadata: ["error": "\(e)"])
        h.authDone(slotB.value, key: key, principal: nil, rateLimited: false)
      }
    }
  }

  func authDone(_ slot: Slot, key: String, principal: Principal?, rateLimited: Bool) {
    if session.state != .authenticating {
      // Closed while the key was being looked up (timeout, shutdown): nothing to answer.
      running -= 1
      return
    }
    switch session.authResult(principal, rateLimited: rateLimited) {
    case .accepted(let p):
      authTask?.cancel()
      if countedRole == nil && counted {
        countedRole = p.role
        server.info.connectionsByRole.withLock { $0[p.role, default: 0] += 1 }
      }
      server.logger.info(
        "authenticated", metadata: ["from": "\(address)", "key": "\(p.keyId)", "role": "\(p.role)"])
      slot.line = WireOK.line(
        JSONObject([
          ("role", .string(p.role.rawValue)),
          ("partner", p.scope.map { .string($0.partner) } ?? .null),
        ]))
    case .rejected(let e, let close):
      server.info.authFailures.wrappingAdd(1, ordering: .relaxed)
      server.throttle.recordFailure(address, now: Writer.now())
      server.logger.warning(
        "AUTH failed",
        metadata: [
          "from": "\(address)", "key": "\(key.prefix(64))", "reason": "\(e.reason)",
          "failures": "\(session.authFailures)",
        ])
      slot.line = e.line
      if close {
        slot.closeAfter = true
        stopReading = true
        waiting.removeAll()
        while let last = slots.last, last !== slot { _ = slots.popLast() }
      }
    }
    finished()
  }

  func startRead(_ p: Pending, _ principal: Principal?) {
    running += 1
    runningKind = .read
    let server = self.server
    let request = p.request
    let slotB = NIOLoopBound(p.slot, eventLoop: context.eventLoop)
    let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
    let f = server.readPool.runIfActive(eventLoop: context.eventLoop) {
      try Execute.read(request, principal, server.reader, server.info)
    }
    f.whenComplete { result in
      let h = bound.value
      switch result {
      case .success(let line): slotB.value.line = line
      case .failure(let e):
        h.server.logger.error("read failed", metadata: ["error": "\(e)"])
        slotB.value.line = StoreFailure.wireError(Ledger.storeError(e), write: false).line
      }
      h.finished()
    }
  }

  /// RECON.IMPORT: parse, check and match against a snapshot on a read thread, record the
  /// import's intent (synced), then queue it for the writer, which appends it in bounded
  /// groups between other clients' (docs/RECONCILIATION.md, "Imports in write groups"). A
  /// statement that does not parse, or that the checks refuse, never reaches the writer.
  func startImport(_ p: Pending, _ r: ReconImportRequest) {
    running += 1
    runningKind = .barrier
    let server = self.server
    let loop = context.eventLoop
    let bound = NIOLoopBound(self, eventLoop: loop)
    let slotB = NIOLoopBound(p.slot, eventLoop: loop)
    let request = p.request
    let f = server.readPool.runIfActive(eventLoop: loop) {
      () throws(StoreError) -> Result<WriteWork, Rejection> in
      try Self.prepareImport(r, server)
    }
    f.whenComplete { result in
      let h = bound.value
      switch result {
      case .failure(let e):
        h.server.logger.error("statement import failed to start", metadata: ["error": "\(e)"])
        slotB.value.line = StoreFailure.wireError(Ledger.storeError(e), write: true).line
        h.finished()
      case .success(.failure(let r)):
        slotB.value.line = WireError(r).line
        h.finished()
      case .success(.success(let work)):
        h.queueImport(slotB.value, request, work)
      }
    }
  }

  /// An import's work off the writer: parse, check and match against a snapshot, then record
  /// the import's intent (synced). Runs on a read thread; shared with the in-process path.
  static func prepareImport(_ r: ReconImportRequest, _ server: ServerContext)
    throws(StoreError) -> Result<WriteWork, Rejection>
  {
    let statements: [TallyReconcile.Statement]
    switch try server.reader.parseStatements(r.statement, format: r.format, encoding: r.encoding)
    {
    case .failure(let rej): return .failure(rej)
    case .success(let s): statements = s
    }
    let routing = ReconRouting(account: r.account, map: r.map)
    switch try server.reader.planImport(
      statements, format: r.format, routing: routing, toleranceDays: r.toleranceDays)
    {
    case .failure(let rej): return .failure(rej)
    case .success(let plan):
      let intent = try server.writer.intents.write(
        plan,
        ReconIntent(
          afterSeq: plan.snapshotSeq, format: r.format, encoding: r.encoding,
          toleranceDays: r.toleranceDays, routing: routing, bytes: r.statement))
      return .success(.reconImport(ReconImportRun(plan), intent: intent))
    }
  }

  /// `REPLICA.PROMOTE`: runs alone (a barrier) and answers once the server is the primary,
  /// or why it is not.
  func startPromote(_ p: Pending) {
    running += 1
    runningKind = .barrier
    let loop = context.eventLoop
    let bound = NIOLoopBound(self, eventLoop: loop)
    let slot = NIOLoopBound(p.slot, eventLoop: loop)
    let replication = server.replication
    Task {
      let line = await replication.promote()
      loop.execute {
        slot.value.line = line
        bound.value.finished()
      }
    }
  }

  /// Queues a parsed import; when the writer's queue is full, waits for space and retries
  /// (the import is already counted as running, so nothing after it starts meanwhile).
  func queueImport(_ slot: Slot, _ request: Request, _ work: WriteWork) {
    let loop = context.eventLoop
    let bound = NIOLoopBound(self, eventLoop: loop)
    let slotB = NIOLoopBound(slot, eventLoop: loop)
    let job = WriteJob(work: work) { result in
      loop.execute { bound.value.writeDone(slotB.value, request, [], result) }
    }
    switch server.writer.queue.tryPush(job) {
    case .queued: return
    case .closed:
      slot.line = WireError(.shuttingDown, "the server is shutting down").line
      finished()
    case .full:
      server.writer.queue.notifyWhenSpace {
        loop.execute { bound.value.queueImport(slotB.value, request, work) }
      }
    }
  }

  /// Who a resolution or unmatch is recorded as: the key that asked, never a name the
  /// request gives. Writes run only after AUTH (`Session.admit`), so there is a key.
  static func actor(_ principal: Principal?) -> String {
    guard let principal else { preconditionFailure("a write ran before AUTH") }
    return "key:" + principal.keyId
  }

  /// What a write request asks of the writer, or its answer when it never reaches it (an
  /// unknown role, a batch whose every entry is malformed). Shared with the in-process path.
  enum WritePlan {
    case work(WriteWork, batch: [Result<EntrySpec, Rejection>])
    case answer(String)
  }

  static func writePlan(_ request: Request, _ principal: Principal?) -> WritePlan {
    let scope = principal?.scope
    let work: WriteWork
    switch request {
    case .keyCreate(let roleName, let partner, let grants):
      guard let role = Role(rawValue: roleName) else {
        return .answer(
          WireError(
            .badRequest, "role must be admin, service, ops or auditor", reason: "INVALID_FIELD",
            details: ["field": "role"]
          ).line)
      }
      work = .keyCreate(role: role, partner: partner, grants: grants)
    case .keyRevoke(let id): work = .keyRevoke(id)
    case .partnerCreate(let x): work = .commands([.createPartner(x)], scope)
    case .accountOpen(var x, let partnerGiven):
      if let scope, !partnerGiven { x.partner = scope.partner }
      work = .commands([.openAccount(x)], scope)
    case .accountClose(let x): work = .commands([.closeAccount(name: x)], scope)
    case .entryPost(let x): work = .commands([.postEntry(x)], scope)
    case .entryReverse(let x): work = .commands([.reverseEntry(x)], scope)
    case .holdCapture(let x): work = .commands([.captureHold(x)], scope)
    case .holdRelease(let x): work = .commands([.releaseHold(holdId: x)], scope)
    case .holdPlace(var x, let ttl):
      // The deadline is taken when the writer places the hold, not now: a request that
      // waits in the queue longer than its ttl must not arrive expired.
      if let ttl { x.ttlNanos = ttl * 1_000_000 }
      work = .commands([.placeHold(x)], scope)
    case .reconResolve(let item, let reason, let entry):
      work = .commands(
        [
          .reconResolve(
            ReconResolved(item: item, reason: reason, by: Self.actor(principal), entry: entry))
        ], scope)
    case .reconUnmatch(let item, let reason):
      work = .commands(
        [.reconUnmatch(ReconUnmatched(item: item, reason: reason, by: Self.actor(principal)))],
        scope)
    case .entryBatch(let items):
      let cmds = items.compactMap { (try? $0.get()).map { Command.postEntry($0) } }
      if cmds.isEmpty { return .answer(Self.batchLine(items, [], [])) }
      return .work(.commands(cmds, scope), batch: items)
    default:
      preconditionFailure("read request routed to the write path")
    }
    return .work(work, batch: [])
  }

  func startWrite(_ p: Pending, _ principal: Principal?) -> Bool {
    let work: WriteWork
    let batchItems: [Result<EntrySpec, Rejection>]
    switch Self.writePlan(p.request, principal) {
    case .answer(let line):
      p.slot.line = line
      flushReady()
      return true
    case .work(let w, let batch):
      work = w
      batchItems = batch
    }
    let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
    let loop = context.eventLoop
    let request = p.request
    let slotB = NIOLoopBound(p.slot, eventLoop: loop)
    let items = batchItems
    let job = WriteJob(work: work) { result in
      loop.execute {
        bound.value.writeDone(slotB.value, request, items, result)
      }
    }
    switch server.writer.queue.tryPush(job) {
    case .queued:
      running += 1
      runningKind = .write
      return true
    case .closed:
      p.slot.line = WireError(.shuttingDown, "the server is shutting down").line
      flushReady()
      return true
    case .full:
      writerFull = true
      server.writer.queue.notifyWhenSpace {
        loop.execute {
          let h = bound.value
          h.writerFull = false
          h.pump()
          h.resumeIfPossible()
        }
      }
      return false
    }
  }

  func writeDone(
    _ slot: Slot, _ request: Request, _ batch: [Result<EntrySpec, Rejection>],
    _ result: WriteResult
  ) {
    slot.line = Self.writeLine(result, request, batch, server)
    finished()
  }

  /// The answer to a write once the writer is done with it; a revoked key is remembered.
  /// Shared with the in-process path.
  static func writeLine(
    _ result: WriteResult, _ request: Request, _ batch: [Result<EntrySpec, Rejection>],
    _ server: ServerContext
  ) -> String {
    switch result {
    case .failed(let e):
      server.logger.error("write failed", metadata: ["error": "\(e)", "code": "\(e.code)"])
      return StoreFailure.wireError(e, write: true).line
    case .notReplicated(let seq, let reason):
      return
        WireError(
          .notReplicated,
          "committed locally up to seq \(seq) but not acknowledged by the stream (\(reason)); "
            + "retry with the same id to learn the outcome",
          details: ["seq": String(seq)]
        ).line
    case .replicated:
      preconditionFailure("connections never send replicated events")
    case .imported(.success(let report)):
      return WireOK.line(Views.reconImport(report))
    case .imported(.failure(let r)):
      return WireError(r).line
    case .checkpointKept:
      preconditionFailure("connections never ask the writer to keep checkpoints")
    case .keyCreated(.success(let k)):
      var o = Execute.key(k)
      o.members.insert(("secret", .string(k.secret)), at: 1)
      return WireOK.line(o)
    case .keyCreated(.failure(let r)):
      return WireError(r).line
    case .keyRevoked(let k):
      if let k {
        server.revoked.withLock { _ = $0.insert(k.id) }
        return WireOK.line(Execute.key(k))
      } else {
        var id = "?"
        if case .keyRevoke(let k) = request { id = k }
        return
          WireError(.notFound, "no such key", reason: "KEY_NOT_FOUND", details: ["key": id]).line
      }
    case .outcomes(let outcomes, let receipts):
      if case .entryBatch = request {
        return Self.batchLine(batch, outcomes, receipts)
      } else {
        return Execute.writeLine(request, outcomes[0], receipts[0])
      }
    }
  }

  static func batchLine(
    _ items: [Result<EntrySpec, Rejection>], _ outcomes: [Outcome], _ receipts: [Receipt?]
  ) -> String {
    var results = [JSONValue]()
    results.reserveCapacity(items.count)
    var k = 0
    for item in items {
      switch item {
      case .failure(let r):
        results.append(.object(WireError(r).batchItem))
      case .success(let e):
        let o = outcomes[k]
        let rc = receipts[k]
        k += 1
        switch o {
        case .rejected(let r): results.append(.object(WireError(r).batchItem))
        default:
          results.append(.object(Execute.writeBody(.entryPost(e), o, rc)))
        }
      }
    }
    return WireOK.line(JSONObject([("results", .array(results))]))
  }

  // MARK: output

  /// Writes every answered slot at the head, in order, with one flush.
  func flushReady() {
    guard !closing else { return }
    var wrote = 0
    var close = false
    while let head = slots.first, let line = head.line {
      _ = slots.popFirst()
      var buf = context.channel.allocator.buffer(capacity: line.utf8.count + 1)
      buf.writeString(line)
      buf.writeInteger(UInt8(ascii: "\n"))
      context.write(wrapOutboundOut(buf), promise: nil)
      server.writer.metrics?.recordErrorLine(line)
      wrote += 1
      if head.closeAfter {
        close = true
        break
      }
    }
    if wrote > 0 {
      context.flush()
      server.info.responses.wrappingAdd(wrote, ordering: .relaxed)
    }
    if close || (shuttingDown && slots.isEmpty && running == 0) {
      closeNow()
      return
    }
    resumeIfPossible()
  }

  func respondAndClose(_ line: String) {
    guard !closing else { return }
    var buf = context.channel.allocator.buffer(capacity: line.utf8.count + 1)
    buf.writeString(line + "\n")
    context.writeAndFlush(wrapOutboundOut(buf), promise: nil)
    closeNow()
  }

  func closeNow() {
    guard !closing else { return }
    closing = true
    session.close()
    context.close(promise: nil)
  }
}
