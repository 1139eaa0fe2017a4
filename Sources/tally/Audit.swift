import ArgumentParser
import TallyAudit
import TallyClient
import TallyCore
import TallyProtocol

/// `--vkey` and `--kept` of the online proof and checkpoint commands: with a verifier
/// key, the server's answers are verified (docs/AUDIT.md) instead of printed as given.
struct AuditOptions: ParsableArguments {
  @Option(
    help: """
      With --server: verify the answer under this verifier key (name+hash+base64) or a file \
      of them (repeatable); a lie is refused, exit 1.
      """)
  var vkey: [String] = []
  @Option(
    name: .customLong("kept"),
    help: """
      With --vkey: a checkpoint note kept earlier (repeatable); the server's tree must \
      extend it (no fork, no rollback), proven by a consistency proof.
      """)
  var kept: [String] = []

  /// The auditor over `online`'s connection, or nil when no key was given (the answer is
  /// then printed unverified, as before).
  func auditor(_ online: Online) throws -> Auditor? {
    guard !vkey.isEmpty else {
      if !kept.isEmpty { throw usage("--kept needs --vkey KEY") }
      return nil
    }
    let vkeys = try VerifyExport.keys(vkey)
    var notes = [SignedCheckpoint]()
    for f in kept {
      switch SignedCheckpoint.open(note: try readSmallFile(f), vkeys: vkeys) {
      case .success(let c): notes.append(c)
      case .failure(let why): throw usage("the kept checkpoint \(f) does not verify: \(why)")
      }
    }
    return Auditor(client: online.client, vkeys: vkeys, kept: notes)
  }

  /// The options verify a server's answers: without `--server` they would be ignored.
  func offline() throws {
    if !vkey.isEmpty || !kept.isEmpty {
      throw usage("--vkey and --kept verify a server's answers: they need --server HOST:PORT")
    }
  }
}

/// Runs one audited request; a refused answer is reported with its code (exit 1, and
/// `{"error":{…}}` on stdout with `--json`).
func audited<T: Sendable>(_ body: @escaping @Sendable () async throws(AuditorError) -> T)
  throws -> T
{
  do {
    return try blocking { () async throws -> T in try await body() }
  } catch let e as AuditorError {
    switch e {
    case .client(.rejected(let code, let body)):
      // The server refused the request (a seq past its head…): as any online command.
      let message =
        (try? TallyResponse(ok: false, code: code, body: body).json())?["message"]?.stringValue
        ?? body
      FileHandleOut.stderr("rejected: \(code): \(message)")
      printJSONError(code: code, message: message)
      throw CLIExit.rejected
    case .client(let c): throw onlineFailure(c)
    case .refused(let r):
      FileHandleOut.stderr("tally: refused \(r.code.rawValue): \(r.message)")
      printJSONError(code: r.code.rawValue, message: r.message)
      throw CLIExit.rejected
    }
  }
}

/// A verified checkpoint as `--json` prints it.
func checkpointJSON(_ c: SignedCheckpoint) -> JSONObject {
  JSONObject([
    ("verified", .bool(true)), ("size", .number(String(c.size))), ("root", .string(c.root.hex)),
    ("chain", c.chain.map { .string($0.hex) } ?? .null), ("note", .string(c.note)),
  ])
}
