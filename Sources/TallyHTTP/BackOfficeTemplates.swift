import Mustache

/// The back office's pages as mustache templates. They are Swift string literals rather than
/// SwiftPM resources: the binary then carries its pages (no resource bundle to install
/// beside `tallyd`, nothing for Foundation's Bundle lookup on Linux to miss), and a
/// template that does not parse fails the first test rather than a running server.
/// Everything shown goes through `{{ }}` (HTML-escaped); the one `{{{ }}}` is the chart,
/// an SVG this process draws from integers (`BalanceChart`).
enum BackOfficeTemplates {
  static let all: [String: String] = [
    "top": top, "bottom": bottom, "signin": signin, "error": error, "partners": partners,
    "partner": partner, "account": account, "recon": recon, "log": log, "audit": audit,
  ]

  static func library() throws -> MustacheLibrary {
    var lib = MustacheLibrary()
    for (name, text) in all { try lib.register(text, named: name) }
    return lib
  }

  static let top = """
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{title}} · Tally back office</title>
    <style>
    body{font-family:system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
    header{background:#1b2a41;color:#fff;padding:.6rem 1rem;display:flex;gap:1rem;align-items:center}
    header a{color:#fff}header form{margin-left:auto}
    main{padding:1rem;max-width:72rem}
    table{border-collapse:collapse;background:#fff;margin:.5rem 0 1rem}
    th,td{border:1px solid #d5d9e0;padding:.25rem .5rem;text-align:left;vertical-align:top}
    td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
    .error{background:#fde8e8;border:1px solid #e0a0a0;padding:.5rem 1rem}
    .code{font-family:monospace;font-weight:bold}
    .note{color:#555}.chart{background:#fff;border:1px solid #d5d9e0;color:#1b6ac9}
    .chart .axis{stroke:#bbb}pre{white-space:pre-wrap;background:#fff;padding:.5rem}
    form.inline{display:inline}
    </style></head><body>
    <header><strong>Tally</strong>
    {{#session}}
    {{#canPartners}}<a href="/partners">Partners</a>{{/canPartners}}
    {{#canLog}}<a href="/log">Log</a>{{/canLog}}
    {{#canAudit}}<a href="/audit">Audit</a>{{/canAudit}}
    <span>{{key}} ({{role}})</span>
    <form method="post" action="/signout"><input type="hidden" name="csrf" value="{{csrf}}">
    <button type="submit" id="signout">Sign out</button></form>
    {{/session}}
    </header><main>
    <h1>{{title}}</h1>

    """

  static let bottom = """
    </main></body></html>

    """

  static let signin = """
    {{> top}}
    {{#failure}}<p class="error"><span class="code">{{code}}</span> {{message}}</p>{{/failure}}
    <p class="note">For admin, ops and auditor keys. Service keys are refused: they are for
    programs, on the socket.</p>
    <form method="post" action="/signin">
    <p><label>Key <input name="key" id="key" autocomplete="username" required></label></p>
    <p><label>Secret <input name="secret" id="secret" type="password"
    autocomplete="current-password" required></label></p>
    <p><button type="submit" id="signin">Sign in</button></p>
    </form>
    {{> bottom}}
    """

  static let error = """
    {{> top}}
    <div class="error"><p><span class="code" id="error-code">{{code}}</span>
    {{#reason}}<span class="code">({{reason}})</span>{{/reason}}</p>
    <p id="error-message">{{message}}</p></div>
    {{> bottom}}
    """

  static let partners = """
    {{> top}}
    <table id="partners"><tr><th>Partner</th><th>Name</th><th class="num">Created at seq</th></tr>
    {{#rows}}<tr><td><a href="/partner?id={{idQ}}">{{id}}</a></td><td>{{name}}</td>
    <td class="num">{{created}}</td></tr>{{/rows}}
    </table>
    {{#next}}<p><a id="next" href="/partners?after={{next}}">Next page</a></p>{{/next}}
    {{> bottom}}
    """

  static let partner = """
    {{> top}}
    <p>Partner <span class="code">{{id}}</span>: {{name}} · as of seq {{asOf}}</p>
    <h2>Totals per currency</h2>
    <table id="totals"><tr><th>Currency</th><th class="num">Accounts</th>
    <th class="num">Posted</th><th class="num">Pending in</th><th class="num">Pending out</th>
    <th class="num">Available</th></tr>
    {{#totals}}<tr><td>{{currency}}</td><td class="num">{{accounts}}</td>
    <td class="num">{{posted}}</td><td class="num">{{pendingIn}}</td>
    <td class="num">{{pendingOut}}</td><td class="num">{{available}}</td></tr>{{/totals}}
    </table>
    <h2>Recent activity</h2>
    <p id="activity">{{entries}} entries, {{holds}} holds ({{openHolds}} open),
    {{unreconciled}} unreconciled items.
    {{#lastActivity}}Last activity {{lastActivity}} (seq {{lastActivitySeq}}).{{/lastActivity}}
    {{^lastActivity}}No activity yet.{{/lastActivity}}</p>
    {{#hasRecent}}<table id="recent"><tr><th>Account</th><th class="num">Last change (seq)</th>
    <th class="num">Balance</th><th class="num">Available</th></tr>
    {{#recent}}<tr><td><a href="/account?name={{nameQ}}">{{name}}</a></td>
    <td class="num"><a href="/log?from={{seq}}">{{seq}}</a></td><td class="num">{{balance}}</td>
    <td class="num">{{available}}</td></tr>
    {{/recent}}</table>{{/hasRecent}}
    <h2>Accounts</h2>
    <table id="accounts"><tr><th>Account</th><th>Currency</th><th>Status</th>
    <th class="num">Balance</th><th class="num">Available</th></tr>
    {{#accounts}}<tr><td><a href="/account?name={{nameQ}}">{{name}}</a></td><td>{{currency}}</td>
    <td>{{status}}</td><td class="num">{{balance}}</td><td class="num">{{available}}</td></tr>
    {{/accounts}}
    </table>
    {{#next}}<p><a id="next" href="/partner?id={{idQ}}&amp;after={{next}}">Next accounts</a></p>
    {{/next}}
    <h2>Open holds</h2>
    <table id="holds"><tr><th>Hold</th><th>State</th><th>Deadline</th><th>Legs</th></tr>
    {{#holds}}<tr><td>{{id}}</td><td>{{state}}</td><td>{{deadline}}</td><td>{{legs}}</td></tr>
    {{/holds}}
    </table>
    {{> bottom}}
    """

  static let account = """
    {{> top}}
    <p>Partner <a href="/partner?id={{partnerQ}}">{{partner}}</a> · {{currency}} ·
    {{status}} · <a id="recon" href="/recon?account={{nameQ}}">Reconciliation</a></p>
    <form method="get" action="/account"><input type="hidden" name="name" value="{{name}}">
    <label>Balance as of seq <input name="as_of" id="as_of" value="{{asOfInput}}"
    inputmode="numeric"></label> <button type="submit">Show</button></form>
    <table id="balance"><tr><th>As of seq</th><th class="num">Balance</th>
    <th class="num">Available</th><th class="num">Posted debits</th>
    <th class="num">Posted credits</th><th class="num">Pending debits</th>
    <th class="num">Pending credits</th></tr>
    <tr><td>{{balanceSeq}}</td><td class="num" id="balance-amount">{{balance}}</td>
    <td class="num">{{available}}</td><td class="num">{{postedDebits}}</td>
    <td class="num">{{postedCredits}}</td><td class="num">{{pendingDebits}}</td>
    <td class="num">{{pendingCredits}}</td></tr></table>
    <h2>Balance over this page</h2>
    {{{chart}}}
    <h2>Statement</h2>
    <table id="statement"><tr><th class="num">Seq</th><th>Time</th><th>Type</th><th>Id</th>
    <th class="num">Debit</th><th class="num">Credit</th><th>Ref</th></tr>
    {{#lines}}<tr><td class="num">{{seq}}</td><td>{{timestamp}}</td><td>{{type}}</td>
    <td>{{id}}</td><td class="num">{{debit}}</td><td class="num">{{credit}}</td><td>{{ref}}</td></tr>
    {{/lines}}
    </table>
    {{#next}}<p><a id="next" href="/account?name={{nameQ}}&amp;from={{next}}">Next page</a></p>
    {{/next}}
    {{> bottom}}
    """

  static let recon = """
    {{> top}}
    <p>Account <a href="/account?name={{nameQ}}">{{name}}</a> · {{currency}} ·
    {{statements}} statements{{#from}} ({{from}} to {{to}}){{/from}}</p>
    <table id="states"><tr><th>State</th><th class="num">Items</th><th class="num">Amount</th></tr>
    {{#states}}<tr><td><a href="/recon?account={{nameQ}}&amp;state={{state}}">{{state}}</a></td>
    <td class="num">{{count}}</td><td class="num">{{amount}}</td></tr>{{/states}}
    </table>
    <p>Show: <a href="/recon?account={{nameQ}}">all</a>
    {{#filters}}· <a href="/recon?account={{nameQ}}&amp;state={{.}}">{{.}}</a> {{/filters}}</p>
    <h2>Items{{#state}} ({{state}}){{/state}}</h2>
    <table id="items"><tr><th class="num">Item</th><th>State</th><th>Match</th><th>Detail</th>
    <th>Action</th></tr>
    {{#items}}<tr id="item-{{item}}"><td class="num">{{item}}</td><td class="state">{{state}}</td>
    <td>{{match}}</td><td>{{detail}}</td><td>
    {{#canResolve}}<form method="post" action="/recon/resolve" class="resolve">
    <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="account"
    value="{{account}}"><input type="hidden" name="item" value="{{item}}">
    <input name="reason" placeholder="reason" required>
    <input name="entry" placeholder="correcting entry (optional)">
    <button type="submit">Resolve</button></form>{{/canResolve}}
    {{#canUnmatch}}<form method="post" action="/recon/unmatch" class="unmatch inline">
    <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="account"
    value="{{account}}"><input type="hidden" name="item" value="{{item}}">
    <input name="reason" placeholder="reason (optional)">
    <button type="submit">Unmatch</button></form>{{/canUnmatch}}
    </td></tr>{{/items}}
    </table>
    {{#next}}<p><a id="next" href="/recon?account={{nameQ}}&amp;{{#state}}state={{state}}&amp;{{/state}}after={{next}}">Next items</a></p>{{/next}}
    {{#canImport}}
    <h2>Import a statement</h2>
    <form method="post" action="/recon/import" enctype="multipart/form-data" id="import">
    <input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="account"
    value="{{name}}">
    <label>Format <select name="format"><option>csv</option><option>camt053</option>
    <option>camt054</option><option>mt940</option></select></label>
    <label>Tolerance (days) <input name="tolerance_days" value="3" size="3"></label>
    <input type="file" name="statement" required>
    <button type="submit">Import</button></form>
    <p class="note">At most {{uploadLimit}} bytes.</p>
    {{/canImport}}
    {{#imported}}<h2>Import summary</h2><pre id="summary">{{imported}}</pre>{{/imported}}
    {{> bottom}}
    """

  static let log = """
    {{> top}}
    <table id="log"><tr><th class="num">Seq</th><th>Time (ns)</th><th>Type</th><th>Chain</th></tr>
    {{#events}}<tr><td class="num">{{seq}}</td><td>{{ts}}</td><td class="type">{{type}}</td>
    <td class="code">{{chain}}</td></tr>{{/events}}
    </table>
    {{#next}}<p><a id="next" href="/log?from={{next}}">Next events</a></p>{{/next}}
    {{> bottom}}
    """

  static let audit = """
    {{> top}}
    <h2>Head</h2>
    <p id="head">seq {{headSeq}} · chain <span class="code">{{headChain}}</span></p>
    <h2>Verifier key</h2>
    <p class="code" id="vkey">{{vkey}}</p>
    <h2>Latest signed checkpoints</h2>
    {{#checkpoints}}<h3>Size {{size}}</h3><pre class="checkpoint">{{note}}</pre>{{/checkpoints}}
    {{^checkpoints}}<p>No checkpoints kept yet.</p>{{/checkpoints}}
    <h2>Last verification</h2>
    {{#verify}}
    <p id="verify">{{#ok}}<strong>ok</strong>{{/ok}}{{^ok}}<strong>FAILED</strong>{{/ok}}:
    {{events}} events to seq {{headSeq}} (chain <span class="code">{{chain}}</span>),
    finished {{finished}} in {{millis}} ms by <span class="code">tally verify</span></p>
    {{#problems}}<p class="error">{{.}}</p>{{/problems}}
    {{/verify}}
    {{^verify}}<p id="verify">This directory has not been verified yet: run
    <span class="code">tally --data DIR verify</span> (it works while tallyd runs).</p>{{/verify}}
    {{#verifyError}}<p class="error" id="verify-error">The last result cannot be read: {{verifyError}}</p>{{/verifyError}}
    {{> bottom}}
    """
}
