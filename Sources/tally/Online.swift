import ArgumentParser
import Dispatch
import Glibc
import TallyClient
import TallyCore
import TallyProtocol

/// `tally --server HOST:PORT`: the same commands through a running `tallyd`.
///
/// The key comes from `--key`/`--secret` or `$TALLY_KEY`/`$TALLY_SECRET`. Output is the
/// server's JSON answer (docs/PROTOCOL.md) on stdout; an `ERR` goes to stderr (and, with
/// `--json`, as `{"error":{…}}` to stdout) with exit code 1.
struct Online {
  let client: TallyClient
  let json: Bool

  static func connect(_ g: GlobalOptions) throws -> Online {
    guard let server = g.serverAddress else { preconditionFailure("not online") }
    guard let key = g.keyId, let secret = g.secretText else {
      throw usage("--server needs a key: --key and --secret, or TALLY_KEY and TALLY_SECRET")
    }
    do {
      let endpoint = try Endpoint(parsing: server)
      let client = try blocking { try await TallyClient.connect(to: endpoint) }
      _ = try blocking { try await client.authenticate(key: key, secret: secret) }
      return Online(client: client, json: g.json)
    } catch let e as TallyClientError {
      throw onlineFailure(e)
    }
  }

  /// Sends one request; returns the OK body, or reports the ERR and exits 1.
  @discardableResult
  func call(_ verb: String, _ body: JSONObject? = nil) throws -> JSONObject {
    let text = body.map { JSONWriter.serialize(.object($0)) }
    let response: TallyResponse
    do {
      response = try blocking { [client] in try await client.call(verb, text) }
    } catch let e as TallyClientError {
      throw onlineFailure(e)
    }
    guard response.ok else {
      let code = response.code ?? "ERR"
      let o = (try? response.json()) ?? JSONObject()
      let message = o["message"]?.stringValue ?? response.body
      FileHandleOut.stderr("rejected: \(code): \(message)")
      if json {
        var err = o
        err.members.insert(("code", .string(code)), at: 0)
        print(JSONWriter.serialize(.object(JSONObject([("error", .object(err))]))))
      }
      throw CLIExit.rejected
    }
    do { return try response.json() } catch { return JSONObject() }
  }

  /// `call`, printing the answer.
  func show(_ verb: String, _ body: JSONObject? = nil) throws {
    print(JSONWriter.serialize(.object(try call(verb, body))))
  }

  /// The minor-unit scale of an account (for amounts given in major units).
  func scale(of account: String) throws -> UInt8 {
    let o = try call("ACCOUNT.GET", JSONObject([("account", .string(account))]))
    guard case .number(let text)? = o["scale"], let s = UInt8(text) else {
      throw usage("the server's account answer has no scale")
    }
    return s
  }

  func close() {
    blockingVoid { [client] in await client.close() }
  }
}

func onlineFailure(_ e: TallyClientError) -> CLIExit {
  FileHandleOut.stderr("tally: error SERVER: \(e)")
  printJSONError(code: "SERVER", message: e.description)
  return .usage
}

/// Runs async client code from the synchronous command line.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
  let box = ResultBox<T>()
  let done = DispatchSemaphore(value: 0)
  Task {
    do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
    done.signal()
  }
  done.wait()
  return try box.result!.get()
}

func blockingVoid(_ body: @escaping @Sendable () async -> Void) {
  let done = DispatchSemaphore(value: 0)
  Task {
    await body()
    done.signal()
  }
  done.wait()
}

/// Written by the task before it signals, read after the wait: the semaphore orders them.
final class ResultBox<T>: @unchecked Sendable {
  var result: Result<T, any Error>?
}

/// JSON building helpers for request bodies.
func body(_ members: [(String, JSONValue?)]) -> JSONObject {
  JSONObject(members.compactMap { k, v in v.map { (k, $0) } })
}

func jstr(_ s: String?) -> JSONValue? { s.map { .string($0) } }
func jnum<I: BinaryInteger>(_ n: I?) -> JSONValue? { n.map { .number(String($0)) } }

func metadataJSON(_ m: Metadata) -> JSONValue? {
  m.pairs.isEmpty ? nil : .object(JSONObject(m.pairs.map { ($0.key, .string($0.value)) }))
}

func legsJSON(_ legs: [LegSpec]) -> JSONValue {
  .array(
    legs.map {
      .object(
        JSONObject([
          ("account", .string($0.account)), ("side", .string($0.side.description)),
          ("amount", .string(String($0.amountMinor))),
        ]))
    })
}

/// `tally --server H:P call VERB [JSON]`: any verb, raw.
struct Call: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Send one protocol request to the server and print its answer (needs --server).")
  @OptionGroup var global: GlobalOptions
  @Argument(help: "The verb, e.g. LOG.HEAD.") var verb: String
  @Argument(help: "The JSON object body, if any.") var json: String?

  func run() throws {
    guard global.serverAddress != nil else { throw usage("call needs --server HOST:PORT") }
    let online = try Online.connect(global)
    defer { online.close() }
    var object: JSONObject?
    if let json {
      switch CommandDecoding.object(Array(json.utf8)) {
      case .success(let o): object = o
      case .failure(let r): throw report(r, json: global.json)
      }
    }
    try online.show(verb, object)
  }
}
