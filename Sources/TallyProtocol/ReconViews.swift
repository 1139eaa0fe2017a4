import TallyCore

/// JSON shapes of reconciliation and partner-view results (docs/PROTOCOL.md, "Partner
/// views and reconciliation"): the same for `RECON.*` / `PARTNER.VIEW` answers and for
/// `tally recon … --json` / `tally partner view --json` on a data directory.
extension Views {
  /// The name `RECON.ITEMS` and `tally recon items --state` take for postings that no
  /// statement line matches.
  public static let missingFromStatement = "missing_from_statement"

  static func balanceCheck(_ c: ReconBalanceCheck?) -> JSONValue {
    guard let c else { return .null }
    return .object(
      JSONObject([
        ("date", s(CivilTime.formatDate(c.dateDays))), ("statement", amount(c.statementMinor)),
        ("ledger", amount(c.ledgerMinor)), ("difference", amount(c.differenceMinor)),
        ("as_of_seq", n(c.asOfSeq)),
      ]))
  }

  static func continuity(_ implied: Int128?, _ printed: Int128?) -> JSONValue {
    guard let implied else { return .null }
    return .object(
      JSONObject([
        ("implied_closing", amount(implied)), ("printed_closing", amount(printed ?? 0)),
      ]))
  }

  static func matched(_ byRule: [ReconRule: Int]) -> JSONValue {
    .object(JSONObject(ReconRule.allCases.map { ($0.description, n(byRule[$0] ?? 0)) }))
  }

  /// `{"account","format","text_encoding","statement_id","lines_read","new","duplicate",
  /// "matched":{rule:n},"discrepancies","foreign_currency","unmatched","first_item",
  /// "last_item","first_seq","last_seq","opening","closing","continuity","statements":[…],
  /// "skipped":[…],"gaps":[…]}`: totals over the statements imported, each of them, those
  /// skipped, and the gaps between consecutive statements of one account.
  public static func reconImport(_ r: ReconImportReport) -> JSONObject {
    JSONObject([
      ("account", s(r.account)), ("format", s(r.format.description)),
      ("text_encoding", s(r.textEncoding.description)),
      ("statement_id", r.statementId.map(s) ?? .null),
      ("lines_read", n(r.linesRead)), ("new", n(r.new)), ("duplicate", n(r.duplicates)),
      ("matched", matched(r.matchedByRule)), ("discrepancies", n(r.discrepancies)),
      ("foreign_currency", n(r.foreignCurrency)), ("unmatched", n(r.unmatched)),
      ("first_item", r.firstItem.map { n($0) } ?? .null),
      ("last_item", r.lastItem.map { n($0) } ?? .null),
      ("first_seq", r.firstSeq.map { n($0) } ?? .null),
      ("last_seq", r.lastSeq.map { n($0) } ?? .null),
      ("opening", balanceCheck(r.opening)), ("closing", balanceCheck(r.closing)),
      ("continuity", continuity(r.continuityImpliedMinor, r.continuityPrintedMinor)),
      ("statements", .array(r.statements.map { .object(reconStatementReport($0)) })),
      ("skipped", .array(r.skipped.map { .object(reconSkipped($0)) })),
      ("gaps", .array(r.gaps.map { .object(reconGap($0)) })),
    ])
  }

  /// One imported statement of a `RECON.IMPORT` answer.
  static func reconStatementReport(_ r: ReconStatementReport) -> JSONObject {
    JSONObject([
      ("index", n(r.index)), ("source", s(r.source)),
      ("statement_id", r.statementId.map(s) ?? .null),
      ("statement_account", r.statementAccount.map(s) ?? .null), ("account", s(r.account)),
      ("currency", s(r.currency)), ("lines_read", n(r.linesRead)), ("new", n(r.new)),
      ("duplicate", n(r.duplicates)), ("matched", matched(r.matchedByRule)),
      ("discrepancies", n(r.discrepancies)), ("foreign_currency", n(r.foreignCurrency)),
      ("unmatched", n(r.unmatched)), ("first_item", r.firstItem.map { n($0) } ?? .null),
      ("last_item", r.lastItem.map { n($0) } ?? .null),
      ("opening", balanceCheck(r.opening)), ("closing", balanceCheck(r.closing)),
      ("continuity", continuity(r.continuityImpliedMinor, r.continuityPrintedMinor)),
    ])
  }

  static func reconSkipped(_ r: ReconSkippedStatement) -> JSONObject {
    JSONObject([
      ("index", n(r.index)), ("source", s(r.source)),
      ("statement_id", r.statementId.map(s) ?? .null),
      ("statement_account", r.statementAccount.map(s) ?? .null), ("currency", s(r.currency)),
      ("lines", n(r.lines)),
    ])
  }

  static func reconGap(_ g: ReconStatementGap) -> JSONObject {
    JSONObject([
      ("account", s(g.account)), ("from_statement", n(g.fromStatement)),
      ("to_statement", n(g.toStatement)),
      ("from_import_seq", g.fromImportSeq.map(n) ?? .null), ("closing", reconBalance(g.closing)),
      ("opening", reconBalance(g.opening)), ("difference", amount(g.differenceMinor)),
    ])
  }

  /// Why an item is in discrepancy: `CURRENCY` (its line is in another currency than the
  /// account's: never matched), `REFERENCE` (its reference names an entry whose amount,
  /// currency or direction differ: see its match); nil for other items.
  public static func discrepancyReason(_ i: ReconItemRecord) -> String? {
    if i.line.isForeignCurrency { return "CURRENCY" }
    return i.state == .discrepancy ? "REFERENCE" : nil
  }

  /// The rows of a status, in state order, then `missing_from_statement`.
  public static func reconStatusRows(_ st: ReconStatus) -> [(String, UInt64, Int128)] {
    var rows = ReconState.allCases.map { state in
      (
        state.description, st.record.counts[Int(state.rawValue)],
        st.record.amountsMinor[Int(state.rawValue)]
      )
    }
    rows.append((missingFromStatement, st.missingCount, st.missingAmountMinor))
    return rows
  }

  /// `{"account","statements","from","to","counts":{state:n},"amounts":{state:"minor"}}`.
  public static func reconStatus(_ st: ReconStatus) -> JSONObject {
    let rows = reconStatusRows(st)
    let r = st.record
    return JSONObject([
      ("account", s(st.account.name)), ("currency", s(st.account.currency)),
      ("statements", n(r.statements)),
      ("from", r.statements > 0 ? date(r.periodFromDays) : .null),
      ("to", r.statements > 0 ? date(r.periodToDays) : .null),
      ("last_import_seq", r.lastImportSeq == 0 ? .null : n(r.lastImportSeq)),
      ("counts", .object(JSONObject(rows.map { ($0.0, n($0.1)) }))),
      ("amounts", .object(JSONObject(rows.map { ($0.0, amount($0.2)) }))),
    ])
  }

  /// An item: `{"item","state","match","state_seq",…line…,"reason","by","entry"}`.
  public static func reconItem(_ i: ReconItemRecord) -> JSONObject {
    var o = JSONObject([
      ("item", n(i.number)), ("account", s(i.account)), ("state", s(i.state.description)),
      ("match", i.match == 0 ? .null : n(i.match)), ("imported_seq", n(i.importedSeq)),
      ("state_seq", n(i.stateSeq)),
      ("discrepancy_reason", discrepancyReason(i).map(s) ?? .null),
    ])
    o.members += reconLine(i.line).members
    if let r = i.resolution {
      o.members += [("reason", s(r.reason)), ("by", s(r.by)), ("entry", r.entry.map(s) ?? .null)]
    }
    return o
  }

  /// A page of `RECON.ITEMS` (items, or postings for `missing_from_statement`):
  /// `{"account","items":[…],"next"}`.
  public static func reconItemsPage(account: String, _ rows: [JSONObject], next: UInt64?)
    -> JSONObject
  {
    JSONObject([
      ("account", s(account)), ("items", .array(rows.map { .object($0) })),
      ("next", next.map { n($0) } ?? .null),
    ])
  }

  /// A posting no statement line matches: `{"seq","id","ref","amount","direction","date"}`.
  public static func missingPosting(_ p: MissingPosting) -> JSONObject {
    JSONObject([
      ("seq", n(p.seq)), ("id", s(p.id)), ("ref", p.ref.map(s) ?? .null),
      ("amount", amount(p.amountMinor)), ("direction", s(p.direction.description)),
      ("date", s(CivilTime.formatDate(p.dateDays))),
    ])
  }

  /// A page of a partner's view: `{"partner":{…},"as_of_seq","stats":{…},"totals":[…],
  /// "accounts":[…],"open_holds":[…],"next"}`.
  public static func partnerView(_ v: PartnerView) -> JSONObject {
    let p = v.partner
    let st = v.stats
    return JSONObject([
      (
        "partner",
        .object(
          JSONObject([
            ("id", s(p.id)), ("name", s(p.name)), ("metadata", metadata(p.metadata)),
            ("created_seq", n(p.createdSeq)),
          ]))
      ),
      ("as_of_seq", n(v.asOfSeq)),
      (
        "stats",
        .object(
          JSONObject([
            ("entries", n(st.entries)), ("holds", n(st.holds)), ("open_holds", n(st.openHolds)),
            ("unreconciled", n(st.unreconciled)),
            ("last_activity_seq", st.lastActivitySeq == 0 ? .null : n(st.lastActivitySeq)),
            (
              "last_activity",
              st.lastActivitySeq == 0 ? .null : s(CivilTime.formatTimestamp(st.lastActivityNanos))
            ),
          ]))
      ),
      (
        "totals",
        .array(
          v.totals.map { t in
            .object(
              JSONObject([
                ("currency", s(t.currency)), ("accounts", n(t.accounts)),
                ("posted", amount(t.postedMinor)), ("pending_in", amount(t.pendingInMinor)),
                ("pending_out", amount(t.pendingOutMinor)),
                ("available", amount(t.availableMinor)),
              ]))
          })
      ),
      ("accounts", .array(v.accounts.map { .object(account($0)) })),
      ("open_holds", .array(v.openHolds.map { .object(hold($0)) })),
      ("recent_accounts", .array(v.recentAccounts.map { .object(account($0)) })),
      ("next", v.nextAccount.map(s) ?? .null),
    ])
  }
}
