/* Head Wiki: the query page. DuckDB-WASM, served by this site (assets/duckdb/), runs SQL in the browser over
   the site's own database, attached read-only; no request leaves the site. Only this page loads the engine.
   Every value from the data is inserted with textContent (cells are untrusted text). */
(function () {
  "use strict";
  var root = document.getElementById("hw-query");
  if (!root) return;
  var $ = function (id) { return document.getElementById(id); };
  var sqlBox = $("hw-sql"), status = $("hw-q-status"), out = $("hw-q-result"), share = $("hw-q-share");
  var CAP = +root.getAttribute("data-cap") || 1000;
  var examples = JSON.parse($("hw-q-examples").textContent);
  var slugs = JSON.parse($("hw-q-slugs").textContent);
  var result = null, sortCol = -1, sortDir = 1, enginePromise = null;

  function say(text, isError) {
    status.textContent = text;
    status.className = "hw-q-status" + (isError ? " hw-q-error" : "");
  }

  function loadScript(url) {
    return new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.src = url;
      s.onload = resolve;
      s.onerror = function () { reject(new Error("could not load " + url)); };
      document.head.appendChild(s);
    });
  }

  // ---- the engine: started on the first query, then kept
  function engine() {
    if (!enginePromise) enginePromise = start();
    return enginePromise;
  }

  async function start() {
    if (location.protocol === "file:") throw new Error("the engine cannot start in a page opened from disk; open the site with `wiki serve` or from a web server");
    var base = new URL(root.getAttribute("data-engine"), location.href);
    var at = function (name) { return new URL(name, base).href; };
    if (!window.Arrow) await loadScript(at("arrow.min.js"));
    var duckdb = await import(at("duckdb-browser.mjs"));
    var bundle = await duckdb.selectBundle({ mvp: { mainModule: "", mainWorker: "" },
      eh: { mainModule: at("duckdb-eh.wasm"), mainWorker: at("duckdb-browser-eh.worker.js") } });
    if (!bundle.mainModule) throw new Error("this browser does not support WebAssembly exceptions, which the engine needs; use a current Chrome, Edge, Firefox or Safari");
    var db = new duckdb.AsyncDuckDB(new duckdb.VoidLogger(), new Worker(bundle.mainWorker));
    await db.instantiate(bundle.mainModule, null);
    // decimals and 128-bit integers (sum() of integers) come back as numbers, not as Arrow's 32-bit words
    await db.open({ filesystem: { allowFullHTTPReads: true }, query: { castDecimalToDouble: true } });
    await db.registerFileURL("wiki.duckdb", new URL(root.getAttribute("data-db"), location.href).href, duckdb.DuckDBDataProtocol.HTTP, false);
    var conn = await db.connect();
    await conn.query("ATTACH 'wiki.duckdb' AS wiki (READ_ONLY)");
    await conn.query("USE wiki");
    // nothing but the published database: no other file or URL, and a query cannot undo this
    await conn.query("SET enable_external_access = false");
    await conn.query("SET lock_configuration = true");
    return conn;
  }

  // ---- values: Arrow -> plain JSON-able values
  function plain(v) {
    if (v === null || v === undefined) return null;
    if (typeof v === "bigint") return (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(-Number.MAX_SAFE_INTEGER)) ? Number(v) : v.toString();
    if (typeof v !== "object") return v;
    if (v instanceof Date) return v.toISOString();
    if (typeof v.toArray === "function" && typeof v.length === "number") return Array.from(v.toArray(), plain);  // a list
    if (ArrayBuffer.isView(v)) return Array.from(v, plain);
    if (typeof v.toJSON === "function") v = v.toJSON();  // a struct or a map
    var o = {};
    Object.keys(v).forEach(function (k) { o[k] = plain(v[k]); });
    return o;
  }

  function toRows(table) {
    var fields = table.schema.fields, cols = fields.map(function (f) { return f.name; });
    var vectors = fields.map(function (f, i) { return table.getChildAt(i); });
    var rows = [];
    for (var r = 0; r < table.numRows; r++) {
      var row = new Array(cols.length);
      for (var c = 0; c < cols.length; c++) {
        var v = vectors[c].get(r), t = fields[c].type, A = window.Arrow.DataType;
        if (v !== null && typeof v === "number" && A.isDate(t)) v = new Date(v).toISOString().slice(0, 10);
        else if (v !== null && typeof v === "number" && A.isTimestamp(t)) v = new Date(v).toISOString().replace("T", " ").replace(/(\.000)?Z$/, "");
        row[c] = plain(v);
      }
      rows.push(row);
    }
    return { columns: cols, rows: rows };
  }

  function show(v) {
    if (v === null) return "NULL";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }

  // ---- the results table
  function headLinks(cols) {
    var lower = cols.map(function (c) { return c.toLowerCase(); });
    var m = lower.indexOf("model"), l = lower.indexOf("layer"), h = lower.indexOf("head");
    return m >= 0 && l >= 0 && h >= 0 ? { m: m, l: l, h: h } : null;
  }

  function render() {
    out.textContent = "";
    if (!result) return;
    var cols = result.columns, rows = result.rows.slice();
    if (sortCol >= 0) {
      rows.sort(function (a, b) {
        var x = a[sortCol], y = b[sortCol];
        if (x === null || y === null) return x === y ? 0 : (x === null ? 1 : -1);  // NULL last either way
        if (typeof x === "number" && typeof y === "number") return sortDir * (x - y);
        return sortDir * show(x).localeCompare(show(y));
      });
    }
    var link = headLinks(cols);
    var table = document.createElement("table"), thead = document.createElement("thead"), tr = document.createElement("tr");
    table.className = "hw-q-table";
    cols.forEach(function (c, i) {
      var th = document.createElement("th"), b = document.createElement("button");
      b.type = "button";
      b.textContent = c + (i === sortCol ? (sortDir > 0 ? " \u25b2" : " \u25bc") : "");
      b.title = "sort by " + c;
      b.addEventListener("click", function () {
        sortDir = sortCol === i ? -sortDir : 1;
        sortCol = i;
        render();
      });
      th.appendChild(b);
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    table.appendChild(thead);
    var tbody = document.createElement("tbody");
    rows.slice(0, CAP).forEach(function (row) {
      var tr = document.createElement("tr");
      var slug = link && typeof row[link.l] === "number" && typeof row[link.h] === "number" ? slugs[row[link.m]] : undefined;
      row.forEach(function (v, i) {
        var td = document.createElement("td"), text = show(v);
        if (v === null) td.className = "hw-null";
        else if (typeof v === "number") td.className = "hw-num";
        if (text.length > 300) { td.title = text.slice(0, 4000); text = text.slice(0, 300) + "\u2026"; }
        if (slug !== undefined && (i === link.h || i === link.l)) {
          var a = document.createElement("a");
          a.href = "heads/" + encodeURIComponent(slug) + "/L" + row[link.l] + "H" + row[link.h] + ".html";
          a.textContent = text;
          td.appendChild(a);
        } else if (slug !== undefined && i === link.m) {
          var am = document.createElement("a");
          am.href = "models/" + encodeURIComponent(slug) + ".html";
          am.textContent = text;
          td.appendChild(am);
        } else {
          td.textContent = text;
        }
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    table.appendChild(tbody);
    var wrap = document.createElement("div");
    wrap.className = "hw-q-scroll";
    wrap.appendChild(table);
    out.appendChild(wrap);
  }

  // ---- running a query
  async function run(sql) {
    sql = sql.trim();
    if (!sql) { say("Type a query first.", true); return; }
    try { history.replaceState(null, "", "?sql=" + encodeURIComponent(sql)); } catch (e) { /* a page opened from disk */ }
    share.href = "query.html?sql=" + encodeURIComponent(sql);
    result = null; sortCol = -1; render();
    setDownloads(false);
    root.setAttribute("data-state", "running");
    var t0 = performance.now();
    try {
      say(enginePromise ? "Running\u2026" : "Starting DuckDB in your browser (about 35 MB, once per visit)\u2026");
      var conn = await engine();
      say("Running\u2026");
      result = toRows(await conn.query(sql));
    } catch (e) {
      root.setAttribute("data-state", "error");
      var msg = String((e && e.message) || e).split(/\n\s*\n/).filter(function (part, i, all) { return all.indexOf(part) === i; });
      say("Error: " + msg.join("\n\n"), true);
      return;
    }
    var n = result.rows.length, ms = Math.round(performance.now() - t0);
    say(n.toLocaleString("en") + " row" + (n === 1 ? "" : "s") + " in " + ms + " ms" +
        (n > CAP ? "; the first " + CAP.toLocaleString("en") + " are shown (the downloads hold them all)" : "") + ".");
    render();
    setDownloads(true);
    root.setAttribute("data-state", "done");
  }

  // ---- downloads
  function setDownloads(on) { $("hw-q-csv").disabled = !on; $("hw-q-json").disabled = !on; }

  function csvField(v) {
    if (v === null) return "";
    var s = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\r\n]|^\s|\s$/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function save(name, type, text) {
    var url = URL.createObjectURL(new Blob([text], { type: type }));
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  $("hw-q-csv").addEventListener("click", function () {
    if (!result) return;
    var lines = [result.columns.map(csvField).join(",")].concat(result.rows.map(function (r) { return r.map(csvField).join(","); }));
    save("query.csv", "text/csv", lines.join("\r\n") + "\r\n");
  });
  $("hw-q-json").addEventListener("click", function () {
    if (!result) return;
    var objs = result.rows.map(function (r) {
      var o = {};
      result.columns.forEach(function (c, i) { o[c] = r[i]; });
      return o;
    });
    save("query.json", "application/json", JSON.stringify(objs, null, 1) + "\n");
  });

  // ---- wiring: the run button, Ctrl+Enter, the examples, a shared link
  $("hw-q-run").addEventListener("click", function () { run(sqlBox.value); });
  sqlBox.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(sqlBox.value); }
  });
  var list = $("hw-q-example-list");
  examples.forEach(function (ex) {
    var li = document.createElement("li"), b = document.createElement("button");
    b.type = "button";
    b.className = "hw-q-example";
    b.textContent = ex.title;
    b.title = ex.sql;
    b.addEventListener("click", function () { sqlBox.value = ex.sql; run(ex.sql); });
    li.appendChild(b);
    list.appendChild(li);
  });
  var shared = new URLSearchParams(location.search).get("sql");
  if (shared) {
    sqlBox.value = shared;
    run(shared);
  } else if (!sqlBox.value && examples.length) {
    sqlBox.value = examples[0].sql;
  }
})();
