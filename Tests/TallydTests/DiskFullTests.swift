import Foundation
import Glibc
import TallyTestSupport
import Testing

// A full disk, and a map at its limit, on a real tallyd: writes answer UNAVAILABLE with a
// reason and whether a retry can succeed, reads go on, /readyz says not writable, and
// nothing acknowledged is lost (docs/OPERATIONS.md, "When the disk fills").

/// `ENTRY.BATCH` of `count` transfers cash → sales, ids `prefix`1…`prefix``count`.
private func batchLine(_ prefix: String, _ count: Int) -> String {
  let entries = (1...count).map {
    entryJSON("\(prefix)\($0)", debit: "cash", credit: "sales", amount: "1")
  }
  return "ENTRY.BATCH {\"entries\":[\(entries.joined(separator: ","))]}"
}

/// The `writable` check of /readyz: (ok, detail).
private func writable(_ httpPort: Int) async throws -> (ok: Bool, detail: String) {
  let ready = try await OpsHTTPTests.get(httpPort, "/readyz")
  let body = try JSONSerialization.jsonObject(with: Data(ready.body.utf8)) as? [String: Any]
  let checks = try #require(body?["checks"] as? [[String: Any]], "\(ready.body)")
  let w = try #require(checks.first { $0["name"] as? String == "writable" }, "\(ready.body)")
  return (w["ok"] as? Bool == true, w["detail"] as? String ?? "")
}

/// STATS `server.write_refusal` (nil when writes are not refused) and /metrics'
/// `tally_writes_refused{reason="…"}` lines set to 1.
private func refusalSeen(_ c: LineConn, _ httpPort: Int) async throws -> (
  stats: [String: Any]?, metrics: [String]
) {
  let st = try await c.ok("STATS")
  let server = try #require(st.body["server"] as? [String: Any], "\(st.raw)")
  let metrics = try await OpsHTTPTests.get(httpPort, "/metrics").body
  // "NAME{LABELS} VALUE": the labels of the lines whose value is 1 (the exporter may print
  // a gauge as 1 or 1.0).
  let on = metrics.split(separator: "\n").compactMap { line -> String? in
    let parts = line.split(separator: " ")
    guard parts.count == 2, parts[0].hasPrefix("tally_writes_refused{"),
      ["1", "1.0"].contains(String(parts[1]))
    else { return nil }
    return String(parts[0])
  }
  return (server["write_refusal"] as? [String: Any], on)
}

/// Fills the filesystem holding `path` with one file there: writes until ENOSPC (bounded by
/// `bytesMax`). Returns the bytes written.
private func fill(_ path: String, bytesMax: Int) throws -> Int {
  let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
  try #require(fd >= 0, "cannot create \(path): \(String(cString: strerror(errno)))")
  defer { Glibc.close(fd) }
  var total = 0
  for chunk in [1 << 20, 4096] {
    let zeros = [UInt8](repeating: 0, count: chunk)
    while total < bytesMax {
      let n = zeros.withUnsafeBytes { Glibc.write(fd, $0.baseAddress!, chunk) }
      if n < 0 {
        try #require(errno == ENOSPC, "ballast: \(String(cString: strerror(errno)))")
        break
      }
      total += n
      if n < chunk { break }
    }
  }
  return total
}

/// Posts batches of `size` until one is answered `ERR`; returns the acknowledged batch
/// prefixes and the refusal. At most `batchesMax` batches.
private func postUntilRefused(
  _ c: LineConn, prefix: String, size: Int, batchesMax: Int
) async throws -> (acked: [String], refusal: Reply) {
  var acked = [String]()
  for b in 1...batchesMax {
    let p = "\(prefix)\(b)-"
    let r = try await c.request(batchLine(p, size), timeout: 60)
    if r.isErr { return (acked, r) }
    let results = try r.arr("results")
    #expect(results.count == size)
    #expect(results.allSatisfy { ($0 as? [String: Any])?["error"] == nil }, "\(r.raw.prefix(300))")
    acked.append(p)
  }
  throw TestFailure("no refusal after \(batchesMax) batches of \(size)")
}

private struct TestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ d: String) { description = d }
}

/// Every acknowledged batch is in the log: its first and last entries are there.
private func expectPresent(_ c: LineConn, _ prefixes: [String], size: Int) async throws {
  for p in prefixes {
    for i in [1, size] { try await c.ok("ENTRY.GET {\"id\":\"\(p)\(i)\"}") }
  }
}

@Suite("tallyd when storage runs out", .timeLimit(.minutes(10)))
struct DiskFullTests {
  @Test(
    "A full disk: UNAVAILABLE NO_SPACE, reads go on, not ready; space freed: writes resume",
    .enabled(if: SmallTmpfs.available, "needs root to mount a tmpfs (mount -t tmpfs)"))
  func fullDiskRefusesWritesAndRecoversWithoutRestart() async throws {
    let root = try makeTempDir("tallyd-full")
    let data = root + "/data"
    try #require(mkdir(data, 0o750) == 0)
    // data.mdb takes its whole 64 MiB map, the journal 1 + 2 MiB: 80 MiB leaves ~12 MiB.
    try #require(
      mount("tmpfs", data, "tmpfs", 0, "size=80m,mode=0750") == 0,
      "mount: \(String(cString: strerror(errno)))")
    defer {
      umount2(data, Int32(MNT_DETACH))
      try? FileManager.default.removeItem(atPath: root)
    }
    let portFile = root + "/http-port"
    let server = try await TallydProcess.start(
      flags: ["--http", "127.0.0.1:0", "--http-port-file", portFile, "--ready-min-free-mib", "0"],
      root: root)
    defer { server.killNow() }
    let http = try await OpsHTTPTests.httpPort(server, portFile)
    let c = try await server.admin()
    try await c.open("cash")
    try await c.open("sales", normal: "credit")
    try await c.post("before", debit: "cash", credit: "sales", amount: "7")
    #expect(try await writable(http).ok)

    let ballast = data + "/ballast"
    let filled = try fill(ballast, bytesMax: 80 << 20)
    #expect(filled > 0)
    let size = 500
    let (acked, refusal) = try await postUntilRefused(c, prefix: "f", size: size, batchesMax: 200)
    #expect(refusal.code == "UNAVAILABLE", "\(refusal.raw)")
    #expect(refusal.reason == "NO_SPACE", "\(refusal.raw)")
    #expect(refusal.details["retryable"] as? String == "true", "\(refusal.raw)")

    // Refused writes change nothing; reads are served meanwhile.
    let head = try await c.head()
    let single = entryLine("single", debit: "cash", credit: "sales", amount: "3")
    let again = try await c.err("UNAVAILABLE", single)
    #expect(again.reason == "NO_SPACE")
    #expect(try await c.head() == head)
    try await c.ok(#"BALANCE.GET {"account":"sales"}"#)
    try await c.ok(#"ENTRY.GET {"id":"before"}"#)
    try await c.ok(#"LOG.READ {"from_seq":1,"limit":5}"#)
    let refused = try await writable(http)
    #expect(!refused.ok && refused.detail.contains("NO_SPACE"), "\(refused)")
    let seen = try await refusalSeen(c, http)
    #expect(seen.stats?["reason"] as? String == "NO_SPACE", "\(String(describing: seen.stats))")
    #expect(seen.stats?["since_ms"] is NSNumber && seen.stats?["free_bytes"] is NSNumber)
    #expect(seen.metrics == [#"tally_writes_refused{reason="NO_SPACE"}"#], "\(seen.metrics)")

    // Space returns: ready again, and the very request that was refused now succeeds.
    try #require(unlink(ballast) == 0)
    let resumed = try await writable(http)
    #expect(resumed.ok, "\(resumed)")
    try await c.ok(single)
    let over = try await refusalSeen(c, http)
    #expect(over.stats == nil && over.metrics.isEmpty, "refusal over: \(over)")
    try await c.ok(batchLine("after-", size), timeout: 60)
    #expect(try await c.head().seq == head.seq + 1 + size)
    try await expectPresent(c, acked + ["after-"], size: size)
    c.close()

    let log = server.log()
    #expect(log.components(separatedBy: "writes refused").count == 2, "\(log.suffix(2000))")
    #expect(log.components(separatedBy: "writes accepted again").count == 2)
    #expect(try await server.terminate() == 0)
    let v = try await runTally(["verify", "--data", data])
    #expect(v.status == 0, "verify: \(v.stdout)\(v.stderr)")
  }

  @Test("A map at --map-max-mib: UNAVAILABLE MAP_FULL, not retryable; a larger limit takes it")
  func mapAtItsLimitRefusesWrites() async throws {
    let root = try makeTempDir("tallyd-mapfull")
    defer { try? FileManager.default.removeItem(atPath: root) }
    let portFile = root + "/http-port"
    let server = try await TallydProcess.start(
      flags: [
        "--map-max-mib", "1", "--http", "127.0.0.1:0", "--http-port-file", portFile,
        "--ready-min-free-mib", "0",
      ],
      root: root)
    defer { server.killNow() }
    let http = try await OpsHTTPTests.httpPort(server, portFile)
    let c = try await server.admin()
    try await c.open("cash")
    try await c.open("sales", normal: "credit")
    let size = 200
    let (acked, refusal) = try await postUntilRefused(c, prefix: "m", size: size, batchesMax: 500)
    #expect(refusal.code == "UNAVAILABLE", "\(refusal.raw)")
    #expect(refusal.reason == "MAP_FULL", "\(refusal.raw)")
    #expect(refusal.details["retryable"] as? String == "false", "\(refusal.raw)")
    let head = try await c.head()
    try await c.ok(#"BALANCE.GET {"account":"sales"}"#)
    #expect(try await c.head() == head)
    #expect(try await writable(http).detail.contains("MAP_FULL"))
    let seen = try await refusalSeen(c, http)
    #expect(seen.stats?["reason"] as? String == "MAP_FULL", "\(String(describing: seen.stats))")
    #expect(seen.metrics == [#"tally_writes_refused{reason="MAP_FULL"}"#], "\(seen.metrics)")
    c.close()

    try await server.restart(flags: ["--map-max-mib", "16"])
    let d = try await server.admin()
    let retried = "m\(acked.count + 1)-"
    try await d.ok(batchLine(retried, size), timeout: 60)
    try await expectPresent(d, acked + [retried], size: size)
    #expect(try await d.head().seq == head.seq + size)
    d.close()
    #expect(try await server.terminate() == 0)
    let v = try await runTally(["verify", "--data", server.dataDir])
    #expect(v.status == 0, "verify: \(v.stdout)\(v.stderr)")
  }
}
