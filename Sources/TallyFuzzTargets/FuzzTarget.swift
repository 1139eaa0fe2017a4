/// A fuzz target: drives real parsing code on arbitrary bytes. It must return for every
/// input; a thrown or returned error is a correct answer. A trap (precondition, bounds,
/// overflow), a hang or an unbounded allocation is a finding, and so is a broken property
/// (`FuzzCheck.expect`), which traps on purpose so that libFuzzer records the input.
public struct FuzzTarget: Sendable {
  public let name: String
  public let summary: String
  public let run: @Sendable ([UInt8]) -> Void

  public init(name: String, summary: String, run: @escaping @Sendable ([UInt8]) -> Void) {
    self.name = name
    self.summary = summary
    self.run = run
  }
}

public enum FuzzTargets {
  /// Every target, by the name `tools/fuzz` and the corpus folder `Fuzz/corpus/NAME` use.
  public static let all: [FuzzTarget] = [
    FuzzTarget(
      name: "request",
      summary: "tallyd's line decoder over random chunks, then the request parser per line",
      run: ProtocolTargets.request),
    FuzzTarget(
      name: "json", summary: "the strict JSON parser; what parses writes and reparses equal",
      run: ProtocolTargets.json),
    FuzzTarget(
      name: "auth", summary: "request lines through a connection's session and the MAC check",
      run: ProtocolTargets.auth),
    FuzzTarget(
      name: "event", summary: "the event decoder; what decodes re-encodes to the same bytes",
      run: RecordTargets.event),
    FuzzTarget(
      name: "journal",
      summary: "a journal segment read back by the journal's open and scan",
      run: RecordTargets.journal),
    FuzzTarget(
      name: "note", summary: "signed notes and verifier keys (C2SP signed-note)",
      run: AuditTargets.note),
    FuzzTarget(
      name: "checkpoint", summary: "signed checkpoints: verification and body parsing",
      run: AuditTargets.checkpoint),
    FuzzTarget(
      name: "manifest", summary: "an export's manifest; what parses prints back identically",
      run: AuditTargets.manifest),
    FuzzTarget(name: "csv", summary: "the CSV statement parser", run: StatementTargets.csv),
    FuzzTarget(
      name: "camt053", summary: "the camt.053/054 statement parser", run: StatementTargets.camt),
    FuzzTarget(name: "mt940", summary: "the MT940 statement parser", run: StatementTargets.mt940),
  ]

  public static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }
}

/// Properties a target checks beyond "does not trap".
public enum FuzzCheck {
  /// Traps when `condition` is false: a broken property is a finding like a crash.
  @inlinable
  public static func expect(
    _ condition: Bool, _ message: @autoclosure () -> String,
    file: StaticString = #fileID, line: UInt = #line
  ) {
    if !condition { fatalError("fuzz property broken: \(message())", file: file, line: line) }
  }
}
