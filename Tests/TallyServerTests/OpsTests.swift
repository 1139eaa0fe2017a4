import Logging
import TallyCore
import TallyProtocol
import Testing

@testable import TallyServer

/// The metrics registry and the JSON log lines (docs/OPERATIONS.md).
@Suite struct OpsTests {
  func text(_ m: ServerMetrics) -> String { m.registry.emitToString() }

  /// The value of the sample `line` (name and labels as written), nil when absent.
  func sample(_ text: String, _ line: String) -> String? {
    for l in text.split(separator: "\n") where l.hasPrefix(line + " ") {
      return String(l.dropFirst(line.count + 1))
    }
    return nil
  }

  @Test func outcomesAreCountedByResultAndCode() {
    let m = ServerMetrics()
    let before = text(m)
    // Every family is there before anything happened, with a HELP line.
    #expect(sample(before, #"tally_rejections_total{code="INSUFFICIENT_FUNDS"}"#) == "0")
    #expect(before.contains("# HELP tally_rejections_total "))
    #expect(before.contains("# TYPE tally_write_group_apply_duration_seconds histogram"))
    m.recordOutcomes([
      .applied(firstSeq: 1, count: 1), .applied(firstSeq: 2, count: 1), .duplicate(seq: 1),
      .rejected(Rejection(.insufficientFunds, "no")),
      .rejected(Rejection(.insufficientFunds, "no")),
      .rejected(Rejection(.accountNotFound, "no")),
    ])
    let t = text(m)
    #expect(sample(t, #"tally_commands_total{result="applied"}"#) == "2")
    #expect(sample(t, #"tally_commands_total{result="duplicate"}"#) == "1")
    #expect(sample(t, #"tally_rejections_total{code="INSUFFICIENT_FUNDS"}"#) == "2")
    #expect(sample(t, #"tally_rejections_total{code="ACCOUNT_NOT_FOUND"}"#) == "1")
  }

  @Test func errorLinesAreCountedByWireCodeOnly() {
    let m = ServerMetrics()
    m.recordErrorLine(#"ERR BAD_REQUEST {"message":"x"}"#)
    m.recordErrorLine(#"ERR BAD_REQUEST {"message":"y"}"#)
    m.recordErrorLine(#"ERR NOT_FOUND {"message":"z"}"#)
    // Not errors, or not a code of ours: no label is made from them (the set stays bounded).
    m.recordErrorLine(#"OK {"pong":true}"#)
    m.recordErrorLine(#"ERR SOMETHING_ELSE {}"#)
    m.recordErrorLine("ERR")
    let t = text(m)
    #expect(sample(t, #"tally_error_responses_total{code="BAD_REQUEST"}"#) == "2")
    #expect(sample(t, #"tally_error_responses_total{code="NOT_FOUND"}"#) == "1")
    #expect(!t.contains("SOMETHING_ELSE"))
  }

  @Test func groupSizesAndDurationsAreHistograms() {
    let m = ServerMetrics()
    m.groupCommands.record(3)
    m.groupCommands.record(100)
    m.journalSync.recordNanoseconds(150_000)
    let t = text(m)
    #expect(sample(t, #"tally_write_group_commands_bucket{le="4.0"}"#) == "1")
    #expect(sample(t, #"tally_write_group_commands_bucket{le="128.0"}"#) == "2")
    #expect(sample(t, "tally_write_group_commands_count") == "2")
    #expect(sample(t, #"tally_journal_sync_duration_seconds_bucket{le="0.0001"}"#) == "0")
    #expect(sample(t, #"tally_journal_sync_duration_seconds_bucket{le="0.00025"}"#) == "1")
  }

  @Test func jsonLogLinesAreOneObjectEach() throws {
    let line = JSONLogHandler.line(
      nowNanos: 1_796_000_000_123_456_789, level: .warning, label: "tallyd",
      message: "AUTH failed \"quoted\"\nnext", source: "TallyServer",
      metadata: ["from": "127.0.0.1", "msg": "shadowed", "n": .stringConvertible(3)])
    #expect(!line.contains("\n"))
    let v = try JSONParser.parse(Array(line.utf8))
    guard case .object(let o) = v else {
      Issue.record("not an object: \(line)")
      return
    }
    func str(_ k: String) -> String? {
      if case .string(let s)? = o[k] { return s }
      return nil
    }
    #expect(str("level") == "warning")
    #expect(str("logger") == "tallyd")
    #expect(str("msg") == "AUTH failed \"quoted\"\nnext")
    #expect(str("meta.msg") == "shadowed")
    #expect(str("from") == "127.0.0.1")
    #expect(str("n") == "3")
    #expect(str("ts") == "2026-11-30T00:53:20.123456Z")
  }
}
