import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct HoldCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hold", abstract: "Authorisation holds: place, capture, release, expire, show.",
    subcommands: [Place.self, Capture.self, Release.self, Expire.self, Show.self])

  struct Place: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Place a hold: moves pending columns, not posted ones.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Hold id (idempotency key).") var id: String
    @Option(help: "Debit leg ACCOUNT=AMOUNT (repeatable).") var debit: [String] = []
    @Option(help: "Credit leg ACCOUNT=AMOUNT (repeatable).") var credit: [String] = []
    @Option(help: "Deadline, RFC 3339 UTC (2026-12-01T00:00:00Z).") var deadline: String?
    @Option(help: "Deadline as seconds from now.") var ttl: Int64?
    @Option(help: "External reference.") var ref: String?
    @Option(name: .customLong("meta"), help: "Metadata key=value (repeatable).")
    var meta: [String] = []

    func validate() throws {
      if deadline != nil && ttl != nil { throw ValidationError("give --deadline or --ttl") }
      if let ttl, ttl <= 0 || ttl > 10 * 365 * 86_400 {
        throw ValidationError("--ttl must be 1…315360000 seconds")
      }
    }

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        let legs = try parseLegs(debit: debit, credit: credit, json: global.json) {
          try online.scale(of: $0)
        }
        return try online.show(
          "HOLD.PLACE",
          body([
            ("id", .string(id)), ("legs", legsJSON(legs)), ("ref", jstr(ref)),
            ("deadline", jstr(deadline)), ("ttl_ms", jnum(ttl.map { $0 * 1000 })),
            ("metadata", metadataJSON(try parseMetadata(meta, json: global.json))),
          ]))
      }
      let ledger = try global.open()
      let legs = try parseLegs(ledger, debit: debit, credit: credit, json: global.json)
      var d: Int64?
      if let deadline {
        guard let ns = CivilTime.parseTimestamp(deadline) else {
          throw usage("--deadline must be RFC 3339 UTC, e.g. 2026-12-01T00:00:00Z")
        }
        d = ns
      }
      var spec = HoldSpec(
        id: id, legs: legs, ref: ref, deadlineNanos: d,
        metadata: try parseMetadata(meta, json: global.json))
      // As the server does: counted from the placement, and a retry answers the original.
      spec.ttlNanos = ttl.map { $0 * 1_000_000_000 }
      _ = try applyOne(ledger, .placeHold(spec), json: global.json, what: "hold \(id)")
    }
  }

  struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Capture a hold, fully or partially (the rest is released).")
    @OptionGroup var global: GlobalOptions
    @Argument var id: String
    @Option(help: "Capture this amount (major units) on every leg (equal-leg holds).")
    var amount: String?
    @Option(help: "Per-leg amounts in major units, comma separated, in leg order.")
    var amounts: String?

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        if amount != nil || amounts != nil {
          throw usage("online, partial captures take minor units: tally call HOLD.CAPTURE")
        }
        return try online.show("HOLD.CAPTURE", body([("id", .string(id))]))
      }
      let ledger = try global.open()
      let hold: HoldRecord?
      do { hold = try ledger.hold(id) } catch { throw fail(error) }
      var spec = CaptureSpec(holdId: id)
      if let hold, amount != nil || amounts != nil {
        var scales = [UInt8]()
        for l in hold.legs {
          guard let a = try? ledger.account(l.account) else { throw usage("account \(l.account)") }
          scales.append(a.record.scale)
        }
        if let amount {
          switch Amount.parseDecimal(amount, scale: scales[0]) {
          case .success(let v): spec.amounts = .uniform(v)
          case .failure(let r): throw report(r, json: global.json)
          }
        } else if let amounts {
          let parts = amounts.split(separator: ",", omittingEmptySubsequences: false)
          guard parts.count == scales.count else {
            throw report(
              Rejection(.invalidField, "hold has \(scales.count) legs, got \(parts.count) amounts"),
              json: global.json)
          }
          var values = [Int128]()
          for (p, s) in zip(parts, scales) {
            switch Amount.parseDecimal(String(p), scale: s) {
            case .success(let v): values.append(v)
            case .failure(let r):
              if String(p) == "0" { values.append(0) } else { throw report(r, json: global.json) }
            }
          }
          spec.amounts = .perLeg(values)
        }
      }
      _ = try applyOne(ledger, .captureHold(spec), json: global.json, what: "hold \(id)")
    }
  }

  struct Release: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Release (void) a hold.")
    @OptionGroup var global: GlobalOptions
    @Argument var id: String

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show("HOLD.RELEASE", body([("id", .string(id))]))
      }
      let ledger = try global.open()
      _ = try applyOne(ledger, .releaseHold(holdId: id), json: global.json, what: "hold \(id)")
    }
  }

  struct Expire: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Expire every pending hold whose deadline has passed.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("as-of"), help: "Expire as of this RFC 3339 UTC time (default: now).")
    var asOf: String?

    func run() throws {
      let ledger = try global.open()
      var t = nowNanos()
      if let asOf {
        guard let ns = CivilTime.parseTimestamp(asOf) else {
          throw usage("--as-of must be RFC 3339 UTC, e.g. 2026-12-01T00:00:00Z")
        }
        t = ns
      }
      // Bounded: each round expires up to holdsPerExpireMax; the number of pending holds is
      // finite and each round removes what it expires.
      var rounds = 0
      while rounds < 1_000 {
        rounds += 1
        let out: Outcome
        do { out = try ledger.apply([.expireHolds(asOfNanos: t)], now: nowNanos())[0] } catch {
          throw fail(error)
        }
        guard case .applied(let first, let count) = out else { break }
        if global.json {
          print(JSONWriter.serialize(.object(Views.outcome(out))))
        } else {
          print(count == 0 ? "no holds due" : "expired \(count) holds at seq \(first)…")
        }
        if count < Limits.holdsPerExpireMax { break }
      }
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a hold.")
    @OptionGroup var global: GlobalOptions
    @Argument var id: String

    func run() throws {
      let ledger = try global.open(.readOnly)
      let hold: HoldRecord?
      do { hold = try ledger.hold(id) } catch { throw fail(error) }
      guard let hold else {
        throw report(Rejection(.holdNotFound, "hold \(id) does not exist"), json: global.json)
      }
      if global.json {
        print(JSONWriter.serialize(.object(Views.hold(hold))))
        return
      }
      print(
        "hold \(hold.id): \(hold.state), placed at seq \(hold.placedSeq)"
          + (hold.resolvedSeq > 0 ? ", resolved at seq \(hold.resolvedSeq)" : "")
          + (hold.deadlineNanos.map { ", deadline \(CivilTime.formatTimestamp($0))" } ?? ""))
      print(
        table(
          ["ACCOUNT", "SIDE", "HELD (minor)", "CAPTURED (minor)"],
          hold.legs.enumerated().map { i, l in
            [
              l.account, l.side.description, String(l.amountMinor),
              i < hold.capturedMinor.count ? String(hold.capturedMinor[i]) : "-",
            ]
          }))
    }
  }
}

/// `--debit A=10.50 --credit B=10.50` → legs, amounts scaled by each account's currency.
func parseLegs(_ ledger: Ledger, debit: [String], credit: [String], json: Bool) throws -> [LegSpec]
{
  try parseLegs(debit: debit, credit: credit, json: json) { name in
    let view: AccountView?
    do throws(StoreError) { view = try ledger.account(name) } catch { throw fail(error) }
    return view?.record.scale
  }
}

/// Legs from `ACCOUNT=AMOUNT` flags, amounts in major units of each account's currency.
func parseLegs(
  debit: [String], credit: [String], json: Bool, scaleOf: (String) throws -> UInt8?
) throws -> [LegSpec] {
  var legs = [LegSpec]()
  for (side, items) in [(Side.debit, debit), (Side.credit, credit)] {
    for item in items {
      guard let eq = item.lastIndex(of: "=") else {
        throw usage("--\(side) expects ACCOUNT=AMOUNT, got \(item)")
      }
      let name = String(item[..<eq])
      let text = String(item[item.index(after: eq)...])
      guard let scale = try scaleOf(name) else {
        throw report(
          Rejection(.accountNotFound, "account \(name) does not exist", ["account": name]),
          json: json)
      }
      switch Amount.parseDecimal(text, scale: scale) {
      case .success(let minor): legs.append(LegSpec(account: name, side: side, amountMinor: minor))
      case .failure(let r): throw report(r, json: json)
      }
    }
  }
  return legs
}
