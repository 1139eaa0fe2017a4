import TallyProtocol
import TallyStore
import Testing

@testable import TallyServer

func principal(_ role: Role) -> Principal {
  Principal(
    keyId: "key-\(role.rawValue)", role: role,
    scope: role == .service ? Scope(partner: "p1") : nil)
}

/// A session that has authenticated as `role`.
func readySession(_ role: Role) -> Session {
  var s = Session(nonce: "n", authFailuresMax: 3)
  _ = s.admit(.auth(key: "k", mac: "m"))
  _ = s.authResult(principal(role))
  return s
}

@Suite("Session state machine")
struct SessionTests {
  @Test("a new session is greeted, keeps its nonce and has no failures")
  func startsGreeted() {
    let s = Session(nonce: "abc", authFailuresMax: 3)
    #expect(s.state == .greeted)
    #expect(s.nonce == "abc")
    #expect(s.authFailures == 0)
    #expect(s.principal == nil)
  }

  @Test("before AUTH only PING runs; everything but QUIT and AUTH is refused AUTH_REQUIRED")
  func beforeAuth() {
    for r in Samples.all {
      var s = Session(nonce: "n", authFailuresMax: 3)
      let a = s.admit(r)
      switch r {
      case .ping: #expect(a == .run(nil))
      case .quit: #expect(a == .quit)
      case .auth(let key, let mac): #expect(a == .authenticate(key: key, mac: mac))
      default:
        guard case .refuse(let e) = a else {
          Issue.record("\(Samples.verb(of: r)) before AUTH: \(a)")
          continue
        }
        #expect(e.code == .authRequired, "\(Samples.verb(of: r))")
        // A refusal leaves the connection usable and still waiting for AUTH.
        #expect(s.state == .greeted)
      }
    }
  }

  @Test("AUTH moves greeted → authenticating → ready with the principal")
  func authSucceeds() {
    var s = Session(nonce: "n", authFailuresMax: 3)
    #expect(s.admit(.auth(key: "k1", mac: "aa")) == .authenticate(key: "k1", mac: "aa"))
    #expect(s.state == .authenticating)
    let p = principal(.ops)
    #expect(s.authResult(p) == .accepted(p))
    #expect(s.state == .ready(p))
    #expect(s.principal == p)
    #expect(s.admit(.logHead) == .run(p))
  }

  @Test("failed AUTHs leave the connection greeted until the third, which closes it")
  func threeFailuresClose() {
    var s = Session(nonce: "n", authFailuresMax: 3)
    for attempt in 1...3 {
      #expect(s.admit(.auth(key: "k", mac: "bad")) == .authenticate(key: "k", mac: "bad"))
      guard case .rejected(let e, let close) = s.authResult(nil) else {
        Issue.record("attempt \(attempt) was accepted")
        return
      }
      #expect(e.code == .authFailed)
      #expect(s.authFailures == attempt)
      #expect(close == (attempt == 3), "attempt \(attempt)")
      #expect(s.state == (attempt == 3 ? .closing : .greeted), "attempt \(attempt)")
    }
    #expect(s.admit(.ping) == .drop)
  }

  @Test("a success after failures still authenticates (failures below the limit)")
  func successAfterFailures() {
    var s = Session(nonce: "n", authFailuresMax: 3)
    for _ in 1...2 {
      _ = s.admit(.auth(key: "k", mac: "bad"))
      _ = s.authResult(nil)
    }
    _ = s.admit(.auth(key: "k", mac: "good"))
    let p = principal(.admin)
    #expect(s.authResult(p) == .accepted(p))
    #expect(s.state == .ready(p))
  }

  @Test("a rate-limited AUTH failure closes at once with reason RATE_LIMITED")
  func rateLimitedCloses() {
    var s = Session(nonce: "n", authFailuresMax: 3)
    _ = s.admit(.auth(key: "k", mac: "m"))
    guard case .rejected(let e, let close) = s.authResult(nil, rateLimited: true) else {
      Issue.record("rate-limited AUTH was accepted")
      return
    }
    #expect(close)
    #expect(e.code == .authFailed)
    #expect(e.reason == "RATE_LIMITED")
    #expect(s.state == .closing)
    #expect(s.admit(.ping) == .drop)
  }

  @Test("AUTH on an authenticated connection is BAD_REQUEST ALREADY_AUTHENTICATED, still ready")
  func authWhenReady() {
    var s = readySession(.admin)
    guard case .refuse(let e) = s.admit(.auth(key: "k2", mac: "m")) else {
      Issue.record("second AUTH not refused")
      return
    }
    #expect(e.code == .badRequest)
    #expect(e.reason == "ALREADY_AUTHENTICATED")
    #expect(s.state == .ready(principal(.admin)))
  }

  @Test("QUIT (greeted or ready) answers quit, then every later request is dropped")
  func quitCloses() {
    for var s in [Session(nonce: "n", authFailuresMax: 3), readySession(.service)] {
      #expect(s.admit(.quit) == .quit)
      #expect(s.state == .closing)
      for r in Samples.all { #expect(s.admit(r) == .drop, "\(Samples.verb(of: r))") }
    }
  }

  @Test("revoked() closes the session with AUTH_FAILED KEY_REVOKED")
  func revokedCloses() {
    var s = readySession(.service)
    let e = s.revoked()
    #expect(e.code == .authFailed)
    #expect(e.reason == "KEY_REVOKED")
    #expect(s.state == .closing)
    #expect(s.principal == nil)
    #expect(s.admit(.logHead) == .drop)
  }

  // The connection can close while its AUTH is still being checked (SIGTERM's graceful
  // shutdown, or the auth timeout when the read threads are busy); the check's result
  // arrives afterwards and must be ignored, not trap and take the whole server down.
  @Test("an AUTH result arriving after close() leaves the session closing, without a trap")
  func lateAuthResultAfterClose() async {
    await #expect(processExitsWith: .success) {
      var s = Session(nonce: "n", authFailuresMax: 3)
      _ = s.admit(.auth(key: "k", mac: "m"))
      s.close()
      _ = s.authResult(nil)
      precondition(s.state == .closing, "a late AUTH result reopened the session")
    }
    await #expect(processExitsWith: .success) {
      var s = Session(nonce: "n", authFailuresMax: 3)
      _ = s.admit(.auth(key: "k", mac: "m"))
      s.close()
      _ = s.authResult(Principal(keyId: "k", role: .admin, scope: nil))
      precondition(s.state == .closing, "a late AUTH result authenticated a closed session")
    }
  }

  @Test("close() drops everything after it")
  func closeDrops() {
    var s = readySession(.admin)
    s.close()
    #expect(s.admit(.ping) == .drop)
  }
}

/// The role matrix, written out: a change to `Access.allowed` must change this table.
/// Columns: admin, service, ops, auditor (`A S O U`, `-` = refused).
let roleMatrix: [String: String] = [
  "PING": "ASOU",
  "QUIT": "ASOU",
  "AUTH": "ASOU",
  "KEY.CREATE": "A---",
  "KEY.REVOKE": "A---",
  "KEY.LIST": "A---",
  "PARTNER.CREATE": "A---",
  "PARTNER.GET": "ASO-",
  "PARTNER.LIST": "ASO-",
  "ACCOUNT.OPEN": "AS--",
  "ACCOUNT.GET": "ASO-",
  "ACCOUNT.CLOSE": "AS--",
  "ACCOUNT.LIST": "ASO-",
  "ENTRY.POST": "AS--",
  "ENTRY.BATCH": "AS--",
  "ENTRY.GET": "ASO-",
  "ENTRY.REVERSE": "AS--",
  "HOLD.PLACE": "AS--",
  "HOLD.CAPTURE": "AS--",
  "HOLD.RELEASE": "AS--",
  "BALANCE.GET": "ASO-",
  "STATEMENT.GET": "ASO-",
  "LOG.HEAD": "ASOU",
  "LOG.READ": "A--U",
  "PROOF.INCLUSION": "A--U",
  "PROOF.CONSISTENCY": "A--U",
  "CHECKPOINT.GET": "A--U",
  "CHECKPOINT.LIST": "A--U",
  "STATS": "A-O-",
  "REPLICA.PROMOTE": "A---",
  "PARTNER.VIEW": "ASO-",
  "RECON.IMPORT": "A-O-",
  "RECON.STATUS": "A-OU",
  "RECON.ITEMS": "A-OU",
  "RECON.RESOLVE": "A-O-",
  "RECON.UNMATCH": "A-O-",
]

let matrixRoles: [Role] = [.admin, .service, .ops, .auditor]

func matrixAllows(_ verb: String, _ role: Role) -> Bool? {
  guard let row = roleMatrix[verb], let i = matrixRoles.firstIndex(of: role) else { return nil }
  return Array(row)[i] != "-"
}

@Suite("Role matrix")
struct AccessTests {
  @Test("the samples hold one request of every case, and the table one row per case")
  func everyCaseSampledOnce() {
    let verbs = Samples.all.map(Samples.verb(of:))
    #expect(Set(verbs).count == verbs.count, "a case is sampled twice")
    #expect(Set(verbs) == Set(roleMatrix.keys))
    #expect(Set(matrixRoles) == Set(Role.allCases), "a role is missing from the table")
  }

  @Test("Access.allowed matches the table for every request and role")
  func allowedMatchesTable() {
    for r in Samples.all {
      for role in Role.allCases {
        let verb = Samples.verb(of: r)
        let want = matrixAllows(verb, role)
        #expect(Access.allowed(r, role) == want, "\(verb) as \(role)")
      }
    }
  }

  @Test("an authenticated session runs what the table allows and refuses the rest FORBIDDEN")
  func sessionEnforcesTable() {
    for r in Samples.all {
      for role in Role.allCases {
        let verb = Samples.verb(of: r)
        var s = readySession(role)
        let a = s.admit(r)
        switch r {
        // QUIT and AUTH have their own answers whatever the role.
        case .quit: #expect(a == .quit)
        case .auth: #expect(a != .run(principal(role)))
        default:
          if matrixAllows(verb, role) == true {
            #expect(a == .run(principal(role)), "\(verb) as \(role)")
          } else {
            guard case .refuse(let e) = a else {
              Issue.record("\(verb) as \(role): \(a), expected FORBIDDEN")
              continue
            }
            #expect(e.code == .forbidden, "\(verb) as \(role)")
            // A refusal does not end the session.
            #expect(s.state == .ready(principal(role)))
          }
        }
      }
    }
  }
}
