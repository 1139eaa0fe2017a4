import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct Balance: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Balances of an account, now or as of a seq.")
  @OptionGroup var global: GlobalOptions
  @Argument var account: String
  @Option(name: .customLong("as-of-seq"), help: "Balances right after this seq.")
  var asOfSeq: UInt64?

  func run() throws {
    if let online = try global.online() {
      defer { online.close() }
      return try online.show(
        "BALANCE.GET", body([("account", .string(account)), ("as_of_seq", jnum(asOfSeq))]))
    }
    let ledger = try global.open(.readOnly)
    if let asOfSeq {
      let head: LogHead
      do { head = try ledger.currentHead() } catch { throw fail(error) }
      if asOfSeq > head.seq { throw usage("--as-of-seq \(asOfSeq) is past the head (\(head.seq))") }
    }
    let view: AccountView?
    do { view = try ledger.balance(account, asOfSeq: asOfSeq) } catch { throw fail(error) }
    guard let view else {
      throw report(
        Rejection(.accountNotFound, "account \(account) does not exist", ["account": account]),
        json: global.json)
    }
    if global.json {
      print(JSONWriter.serialize(.object(Views.balance(view))))
      return
    }
    let a = view.record
    let b = view.balances
    let f = { (v: Int128) in Amount.formatDecimal(v, scale: a.scale) }
    print(
      table(
        [
          "ACCOUNT", "CUR", "POSTED DR", "POSTED CR", "PENDING DR", "PENDING CR", "BALANCE",
          "AVAILABLE", "SEQ",
        ],
        [
          [
            a.name, a.currency, f(b.postedDebits), f(b.postedCredits), f(b.pendingDebits),
            f(b.pendingCredits), f(b.balance(normal: a.normalSide)),
            b.available(normal: a.normalSide).map(f) ?? "overflow", String(view.seq),
          ]
        ]))
  }
}
