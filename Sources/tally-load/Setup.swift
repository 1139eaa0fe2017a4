import TallyClient

/// Connects and, when a key is given, authenticates.
func openClient(_ config: LoadConfig) async throws(TallyClientError) -> TallyClient {
  let client = try await TallyClient.connect(to: config.endpoint)
  if let key = config.key, let secret = config.secret {
    do {
      _ = try await client.authenticate(key: key, secret: secret)
    } catch {
      await client.close()
      throw error
    }
  }
  return client
}

/// Why account setup stopped.
struct SetupError: Error, CustomStringConvertible {
  var description: String
}

/// Opens `load-0` … `load-<n-1>`, idempotently: reopening an account with the same
/// attributes answers OK, so a rerun costs one round of requests and changes nothing.
///
/// A few connections share the work; each keeps `window` requests in flight and waits for
/// the whole window before sending the next, which bounds the requests outstanding.
func openAccounts(_ config: LoadConfig, log: @Sendable (String) -> Void) async throws {
  let connections = min(config.connections, 4)
  let window = 256
  var clients: [TallyClient] = []
  do {
    for _ in 0..<connections {
      clients.append(try await openClient(config))
    }
  } catch {
    for client in clients { await client.close() }
    throw error
  }
  // A server that stops answering must not stall the setup forever: past the limit the
  // connections are closed, which fails the waiting calls. 2 minutes plus 1 ms per account
  // is far beyond any healthy server.
  let opened = clients
  let limit = Duration.seconds(120) + .milliseconds(config.accounts)
  let watchdog = Task {
    try await Task.sleep(for: limit)
    for client in opened { await client.close() }
  }
  defer { watchdog.cancel() }
  do {
    try await openAccounts(config.accounts, over: clients, window: window, log: log)
  } catch {
    for client in clients { await client.close() }
    throw error
  }
  for client in clients { await client.close() }
}

private func openAccounts(
  _ total: Int, over clients: [TallyClient], window: Int, log: @Sendable (String) -> Void
) async throws {
  let connections = clients.count
  log("setup: opening \(total) accounts over \(connections) connections")
  try await withThrowingTaskGroup(of: Void.self) { group in
    for (index, client) in clients.enumerated() {
      group.addTask {
        // This connection's accounts are index, index + connections, …
        var next = index
        while next < total {
          let chunk = Array(stride(from: next, to: total, by: connections).prefix(window))
          next = chunk.last! + connections
          try await withThrowingTaskGroup(of: Void.self) { calls in
            for account in chunk {
              calls.addTask {
                let response = try await client.call("ACCOUNT.OPEN", accountOpenBody(account))
                guard response.ok else {
                  throw SetupError(
                    description:
                      "ACCOUNT.OPEN \(accountName(account)): ERR \(response.code ?? "") "
                      + response.body)
                }
              }
            }
            try await calls.waitForAll()
          }
        }
      }
    }
    try await group.waitForAll()
  }
  log("setup: \(total) accounts open")
}
