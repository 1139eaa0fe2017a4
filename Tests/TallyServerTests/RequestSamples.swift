import TallyCore
import TallyProtocol

/// One value of every `Request` case, and the verb naming each case.
enum Samples {
  static let legs = [
    LegSpec(account: "cash", side: .debit, amountMinor: 100),
    LegSpec(account: "sales", side: .credit, amountMinor: 100),
  ]
  static let entry = EntrySpec(id: "e1", legs: legs)

  /// Exactly one request per case; `verb(of:)` being exhaustive keeps this list honest: a
  /// new case fails to compile there, and `everyCaseSampledOnce` fails until it is added here.
  static let all: [Request] = [
    .ping, .quit, .auth(key: "k", mac: "00"),
    .keyCreate(role: "ops", partner: nil, grants: []), .keyRevoke(key: "k"), .keyList,
    .partnerCreate(PartnerCreated(id: "p1", name: "P")), .partnerGet(id: "p1"),
    .partnerList(after: nil, limit: 10),
    .accountOpen(
      AccountOpened(name: "cash", partner: "platform", currency: "EUR", normalSide: .debit),
      partnerGiven: false),
    .accountGet(name: "cash"), .accountClose(name: "cash"),
    .accountList(partner: nil, after: nil, limit: 10),
    .entryPost(entry), .entryBatch([.success(entry)]), .entryGet(id: "e1"),
    .entryReverse(ReverseSpec(id: "r1", entryId: "e1")),
    .holdPlace(HoldSpec(id: "h1", legs: legs), ttlMillis: 1000),
    .holdCapture(CaptureSpec(holdId: "h1")), .holdRelease(id: "h1"),
    .balanceGet(account: "cash", asOfSeq: nil),
    .statementGet(account: "cash", fromSeq: 1, toSeq: 10, limit: 10),
    .logHead, .logRead(fromSeq: 1, limit: 10), .proofInclusion(seq: 3, size: 8),
    .proofConsistency(from: 2, to: 8), .checkpointGet(size: nil),
    .checkpointList(after: 0, limit: 10), .stats,
    .partnerView(partner: "p1", after: nil, limit: 10, asOfSeq: nil),
    .reconImport(
      ReconImportRequest(
        account: "cash", format: .csv, statement: Array("x".utf8), toleranceDays: 2,
        map: ["DE89": "cash"], encoding: .windows1252)),
    .reconStatus(account: "cash"),
    .reconItems(account: "cash", filter: .all, after: 0, limit: 10),
    .reconResolve(item: 1, reason: "r", entry: nil), .reconUnmatch(item: 1, reason: nil),
    .replicaPromote,
  ]

  static func verb(of r: Request) -> String {
    switch r {
    case .ping: "PING"
    case .quit: "QUIT"
    case .auth: "AUTH"
    case .keyCreate: "KEY.CREATE"
    case .keyRevoke: "KEY.REVOKE"
    case .keyList: "KEY.LIST"
    case .partnerCreate: "PARTNER.CREATE"
    case .partnerGet: "PARTNER.GET"
    case .partnerList: "PARTNER.LIST"
    case .accountOpen: "ACCOUNT.OPEN"
    case .accountGet: "ACCOUNT.GET"
    case .accountClose: "ACCOUNT.CLOSE"
    case .accountList: "ACCOUNT.LIST"
    case .entryPost: "ENTRY.POST"
    case .entryBatch: "ENTRY.BATCH"
    case .entryGet: "ENTRY.GET"
    case .entryReverse: "ENTRY.REVERSE"
    case .holdPlace: "HOLD.PLACE"
    case .holdCapture: "HOLD.CAPTURE"
    case .holdRelease: "HOLD.RELEASE"
    case .balanceGet: "BALANCE.GET"
    case .statementGet: "STATEMENT.GET"
    case .logHead: "LOG.HEAD"
    case .logRead: "LOG.READ"
    case .proofInclusion: "PROOF.INCLUSION"
    case .proofConsistency: "PROOF.CONSISTENCY"
    case .checkpointGet: "CHECKPOINT.GET"
    case .checkpointList: "CHECKPOINT.LIST"
    case .stats: "STATS"
    case .partnerView: "PARTNER.VIEW"
    case .reconImport: "RECON.IMPORT"
    case .reconStatus: "RECON.STATUS"
    case .reconItems: "RECON.ITEMS"
    case .reconResolve: "RECON.RESOLVE"
    case .reconUnmatch: "RECON.UNMATCH"
    case .replicaPromote: "REPLICA.PROMOTE"
    }
  }

  /// `Request` is not `Equatable`, but every payload is.
  static func same(_ a: Request, _ b: Request) -> Bool {
    switch (a, b) {
    case (.ping, .ping), (.quit, .quit), (.keyList, .keyList), (.logHead, .logHead),
      (.stats, .stats), (.replicaPromote, .replicaPromote):
      return true
    case (.auth(let k1, let m1), .auth(let k2, let m2)): return k1 == k2 && m1 == m2
    case (.keyCreate(let r1, let p1, let g1), .keyCreate(let r2, let p2, let g2)):
      return r1 == r2 && p1 == p2 && g1 == g2
    case (.keyRevoke(let x), .keyRevoke(let y)): return x == y
    case (.partnerCreate(let x), .partnerCreate(let y)): return x == y
    case (.partnerGet(let x), .partnerGet(let y)): return x == y
    case (.partnerList(let a1, let l1), .partnerList(let a2, let l2)):
      return a1 == a2 && l1 == l2
    case (.accountOpen(let x, let g1), .accountOpen(let y, let g2)): return x == y && g1 == g2
    case (.accountGet(let x), .accountGet(let y)): return x == y
    case (.accountClose(let x), .accountClose(let y)): return x == y
    case (.accountList(let p1, let a1, let l1), .accountList(let p2, let a2, let l2)):
      return p1 == p2 && a1 == a2 && l1 == l2
    case (.entryPost(let x), .entryPost(let y)): return x == y
    case (.entryBatch(let x), .entryBatch(let y)): return x == y
    case (.entryGet(let x), .entryGet(let y)): return x == y
    case (.entryReverse(let x), .entryReverse(let y)): return x == y
    case (.holdPlace(let x, let t1), .holdPlace(let y, let t2)): return x == y && t1 == t2
    case (.holdCapture(let x), .holdCapture(let y)): return x == y
    case (.holdRelease(let x), .holdRelease(let y)): return x == y
    case (.balanceGet(let a1, let s1), .balanceGet(let a2, let s2)): return a1 == a2 && s1 == s2
    case (
      .statementGet(let a1, let f1, let t1, let l1), .statementGet(let a2, let f2, let t2, let l2)
    ):
      return a1 == a2 && f1 == f2 && t1 == t2 && l1 == l2
    case (.logRead(let f1, let l1), .logRead(let f2, let l2)): return f1 == f2 && l1 == l2
    case (.proofInclusion(let s1, let n1), .proofInclusion(let s2, let n2)):
      return s1 == s2 && n1 == n2
    case (.proofConsistency(let f1, let t1), .proofConsistency(let f2, let t2)):
      return f1 == f2 && t1 == t2
    case (.checkpointGet(let a), .checkpointGet(let b)): return a == b
    case (.checkpointList(let a1, let l1), .checkpointList(let a2, let l2)):
      return a1 == a2 && l1 == l2
    case (
      .partnerView(let p1, let a1, let l1, let s1), .partnerView(let p2, let a2, let l2, let s2)
    ):
      return p1 == p2 && a1 == a2 && l1 == l2 && s1 == s2
    case (.reconImport(let x), .reconImport(let y)): return x == y
    case (.reconStatus(let x), .reconStatus(let y)): return x == y
    case (.reconItems(let a1, let f1, let x1, let l1), .reconItems(let a2, let f2, let x2, let l2)):
      return a1 == a2 && f1 == f2 && x1 == x2 && l1 == l2
    case (.reconResolve(let i1, let r1, let e1), .reconResolve(let i2, let r2, let e2)):
      return i1 == i2 && r1 == r2 && e1 == e2
    case (.reconUnmatch(let i1, let r1), .reconUnmatch(let i2, let r2)):
      return i1 == i2 && r1 == r2
    default: return false
    }
  }

  static func same(_ a: Result<Request, WireError>, _ b: Result<Request, WireError>) -> Bool {
    switch (a, b) {
    case (.success(let x), .success(let y)): same(x, y)
    case (.failure(let x), .failure(let y)): x == y
    default: false
    }
  }
}
