import PropertyBased
import TallyTestSupport
import Testing

@testable import TallyReconcile

@Suite("Random statements in every format")
struct PropertyTests {
  @Test("A random statement written as CSV, camt.053 and MT940 parses back to the same lines")
  func randomStatementsRoundTrip() async {
    await seededCheck("statement formats", seed: 0x5EC0_2C11_E000_0001, count: 200) { rng in
      let model = RandomStatement.make(&rng)
      let expected = model.expectedLines
      let opening = StatementBalance(
        amountMinor: model.opening, currency: model.currency, dateDays: model.openingDays)
      let closing = StatementBalance(
        amountMinor: model.closing, currency: model.currency, dateDays: model.closingDays)
      let inputs: [(StatementFormat, [UInt8])] = [
        (.csv, CSVWriter.write(model, &rng)), (.camt053, CamtWriter.write(model, &rng)),
        (.mt940, MT940Writer.write(model, &rng)),
      ]
      for (format, bytes) in inputs {
        let s: Statement
        do {
          s = try StatementParser.parse(bytes, format: format, scale: testScale)
        } catch {
          Issue.record("\(format): \(error)\n\(String(decoding: bytes, as: UTF8.self))")
          return
        }
        #expect(s.currency == model.currency, "\(format)")
        #expect(s.lines.count == expected.count, "\(format)")
        for (got, want) in zip(s.lines, expected) where got.sourceless != want {
          let text = String(decoding: bytes, as: UTF8.self)
          Issue.record(
            "\(format) line \(want.index):\n got \(got.sourceless)\nwant \(want)\n\(text)")
          return
        }
        if format != .csv {
          #expect(s.opening == opening, "\(format)")
          #expect(s.closing == closing, "\(format)")
          #expect(s.account == model.account, "\(format)")
        }
      }
    }
  }

  @Test("Several random statements in one MT940, camt.053 and camt.054 parse back in order")
  func randomMultiStatementFilesRoundTrip() async {
    await seededCheck("multi-statement files", seed: 0x5EC0_2C11_E000_0002, count: 100) { rng in
      let models = (0..<rng.int(1...4)).map { _ in RandomStatement.make(&rng) }
      let inputs: [(StatementFormat, [UInt8])] = [
        (.mt940, MT940Writer.write(models, &rng)),
        (.camt053, CamtWriter.write(models, notification: false, &rng)),
        (.camt054, CamtWriter.write(models, notification: true, &rng)),
      ]
      for (format, bytes) in inputs {
        let all: [Statement]
        do {
          all = try StatementParser.parseAll(bytes, format: format, scale: testScale)
        } catch {
          Issue.record("\(format): \(error)\n\(String(decoding: bytes, as: UTF8.self))")
          return
        }
        #expect(all.count == models.count, "\(format)")
        for (k, (s, model)) in zip(all, models).enumerated() {
          #expect(s.account == model.account && s.currency == model.currency, "\(format) \(k)")
          #expect(s.lines.map(\.sourceless) == model.expectedLines, "\(format) statement \(k)")
          if format == .camt054 {
            #expect(s.opening == nil && s.closing == nil)
          } else {
            #expect(s.opening?.amountMinor == model.opening, "\(format) \(k)")
            #expect(s.closing?.amountMinor == model.closing, "\(format) \(k)")
            #expect(s.continuityDifference() == nil, "\(format) \(k)")
          }
        }
      }
    }
  }
}
