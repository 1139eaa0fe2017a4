import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct Log: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Read the event log with each event's leaf and chain hash.")
  @OptionGroup var global: GlobalOptions
  @Option(name: .customLong("from-seq")) var fromSeq: UInt64 = 1
  @Option(help: "At most this many events (1…10000).") var limit: Int = Limits.pageLimitDefault
  @Flag(help: "Include each event's canonical bytes as hex.") var hex = false

  func validate() throws {
    try checkPageLimit(limit)
  }

  func run() throws {
    if let online = try global.online() {
      defer { online.close() }
      return try online.show(
        "LOG.READ", body([("from_seq", jnum(fromSeq)), ("limit", jnum(limit))]))
    }
    let ledger = try global.open(.readOnly)
    let records: [LogRecord]
    do { records = try ledger.log(fromSeq: fromSeq, limit: limit) } catch { throw fail(error) }
    for r in records {
      if global.json {
        var o = Views.event(r.event)
        o.members += [("leaf", .string(r.leaf.hex)), ("chain", .string(r.chain.hex))]
        if hex { o.members.append(("bytes", .string(r.bytes.hex))) }
        print(JSONWriter.serialize(.object(o)))
      } else {
        let e = r.event
        var line = "\(e.seq)  \(CivilTime.formatTimestamp(e.timestampNanos))  \(e.body.type)  "
        switch e.body {
        case .partnerCreated(let p): line += p.id
        case .assetDeclared(let a): line += "\(a.code) scale \(a.scale)"
        case .accountOpened(let a): line += "\(a.name) \(a.currency) partner \(a.partner)"
        case .accountClosed(let n): line += n
        case .entryPosted(let p):
          line +=
            p.id + (p.reversalOf.map { " (reverses \($0))" } ?? "") + "  "
            + p.legs.map(describe).joined(separator: ", ")
        case .holdPlaced(let h):
          line += h.id + "  " + h.legs.map(describe).joined(separator: ", ")
        case .holdCaptured(let c): line += "\(c.holdId) \(c.amountsMinor.map(String.init))"
        case .holdReleased(let id), .holdExpired(let id): line += id
        case .reconImported(let r):
          line +=
            "\(r.account) \(r.header.format) part \(r.part + 1)/\(r.parts), "
            + "\(r.lines.count) lines"
        case .reconMatched(let m):
          line += "\(m.account) \(m.matches.count) matches"
        case .reconResolved(let r): line += "item \(r.item) by \(r.by): \(r.reason)"
        case .reconUnmatched(let u): line += "item \(u.item) by \(u.by)"
        }
        print(line + "  chain \(r.chain.hex.prefix(16))…")
        if hex { print("    \(r.bytes.hex)") }
      }
    }
  }
}

func describe(_ leg: Leg) -> String {
  "\(leg.side == .debit ? "DR" : "CR") \(leg.account) \(leg.amountMinor)"
}
