// imgaudit HTML report: renders the embedded JSON report (the same
// document as --format json) into a lifetime matrix per VM or image and
// findings grouped by exposure, with filters and pagination. Every string
// from the report is set as text (textContent), never parsed as markup.
(function () {
  'use strict';
  // The page is parsed up to here: measurements read this mark.
  performance.mark('imgaudit-start');
  var PAGE = 25;        // finding cards per page
  var MATRIX_PAGE = 50; // matrix rows per page
  var LOC_PAGE = 100;   // locations listed before "show all"
  var OPEN_MATRICES = 8; // matrices drawn at once; the others when opened

  var cfg = JSON.parse(document.getElementById('imgaudit-config').textContent);
  var data = JSON.parse(document.getElementById('imgaudit-report').textContent);
  var app = document.getElementById('app');

  // Control and invisible characters (bidi overrides, zero-width marks) in
  // strings from an image are shown as escapes, as in the table format.
  var INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;
  function clean(s) {
    return String(s).replace(INVISIBLE, function (c) {
      return '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4);
    });
  }

  // el builds an element; strings become text nodes, never markup.
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v == null || v === false) return;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = clean(v);
        else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : clean(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(e, c) {
    if (c == null || c === false) return;
    if (Array.isArray(c)) { c.forEach(function (x) { add(e, x); }); return; }
    if (typeof c !== 'object') c = document.createTextNode(clean(c));
    e.appendChild(c);
  }
  function list(v) { return v == null ? [] : Array.isArray(v) ? v : [v]; }
  function uniq(a) { return Array.from(new Set(a)); }
  function cmp(a, b) { return a < b ? -1 : a > b ? 1 : 0; }
  function plural(n, w) { return n + ' ' + w + (n === 1 ? '' : 's'); }
  function hex(n) { return typeof n === 'number' ? '0x' + n.toString(16) : String(n == null ? '-' : n); }
  function dash(s) { return s == null || s === '' ? '-' : s; }
  function kv(v) {
    if (v == null) return '';
    if (Array.isArray(v)) return v.map(kv).join('; ');
    if (typeof v === 'object') return Object.keys(v).sort().map(function (k) { return k + ': ' + kv(v[k]); }).join(', ');
    return String(v);
  }
  function rank(order, x) { var i = order.indexOf(x); return i < 0 ? order.length : i; }

  // The findings, prepared once: exposure, section and targets.
  var items = (data.findings || []).map(function (f, i) {
    var locs = f.locations || [];
    var exp = (f.exposure && f.exposure.length ? f.exposure.slice() : uniq(locs.map(function (l) { return l.exposure; }).filter(Boolean)));
    exp.sort(function (a, b) { return rank(cfg.exposures, a) - rank(cfg.exposures, b) || cmp(a, b); });
    var outside = !!f.outside_guest_control || exp.some(function (e) { return e !== cfg.live; });
    var section = f.category === cfg.rollback ? 'rollback' : f.category === cfg.cloned ? 'cloned' :
      f.severity === cfg.public_severity ? 'public' : outside ? 'outside' : 'live';
    return { f: f, i: i, exp: exp, outside: outside, section: section,
      targets: uniq(locs.map(function (l) { return l.target; }).filter(Boolean)) };
  });
  // Display order, as report.SortedFindings: outside the guest's control
  // first, then by severity, most surprising exposure, rule, fingerprint.
  items.sort(function (a, b) {
    return (a.outside === b.outside ? 0 : a.outside ? -1 : 1) ||
      rank(cfg.severities, a.f.severity) - rank(cfg.severities, b.f.severity) ||
      rank(cfg.exposures, a.exp[0]) - rank(cfg.exposures, b.exp[0]) ||
      cmp(a.f.rule, b.f.rule) || cmp(a.f.fingerprint, b.f.fingerprint);
  });

  // ---- filters ----
  function ordered(values, order) {
    return uniq(values).sort(function (a, b) { return rank(order, a) - rank(order, b) || cmp(a, b); });
  }
  var severities = ordered(items.map(function (x) { return x.f.severity || ''; }), cfg.severities);
  var exposures = ordered([].concat.apply([], items.map(function (x) { return x.exp; })), cfg.exposures);
  var rules = uniq(items.map(function (x) { return x.f.rule; })).sort(cmp);
  var targets = uniq((data.targets || []).map(function (t) { return t.path; }).concat(
    [].concat.apply([], items.map(function (x) { return x.targets; })))).sort(cmp);
  var state = { sev: new Set(severities), exp: new Set(exposures), rule: '', target: '' };

  function matches(x) {
    return state.sev.has(x.f.severity || '') &&
      (x.exp.length === 0 || x.exp.some(function (e) { return state.exp.has(e); })) &&
      (!state.rule || x.f.rule === state.rule) &&
      (!state.target || x.targets.indexOf(state.target) >= 0);
  }

  var shown = el('span', { class: 'shown', id: 'shown-count' });
  function checkboxes(name, values, set) {
    return el('fieldset', { id: 'filter-' + name }, el('legend', { text: name }), values.map(function (v) {
      return el('label', null, el('input', { type: 'checkbox', value: v, checked: true, onchange: function (ev) {
        if (ev.target.checked) set.add(v); else set.delete(v);
        render();
      } }), ' ', v || 'unknown');
    }));
  }
  function select(name, values, key) {
    return el('label', null, name + ' ', el('select', { id: 'filter-' + name, onchange: function (ev) {
      state[key] = ev.target.value;
      render();
    } }, el('option', { value: '', text: 'all' }), values.map(function (v) { return el('option', { value: v, text: v }); })));
  }
  var filters = el('div', { class: 'filters', id: 'filters' },
    checkboxes('severity', severities, state.sev),
    checkboxes('exposure', exposures, state.exp),
    select('rule', rules, 'rule'),
    select('target', targets, 'target'),
    el('button', { type: 'button', id: 'filter-reset', onclick: function () {
      state.sev = new Set(severities); state.exp = new Set(exposures); state.rule = ''; state.target = '';
      filters.querySelectorAll('input[type=checkbox]').forEach(function (c) { c.checked = true; });
      filters.querySelectorAll('select').forEach(function (s) { s.value = ''; });
      // the sets were replaced: rebind the checkboxes
      rebind();
      render();
    } }, 'reset'),
    shown);
  function rebind() {
    filters.querySelectorAll('#filter-severity input').forEach(function (c) {
      c.onchange = function () { if (c.checked) state.sev.add(c.value); else state.sev.delete(c.value); render(); };
    });
    filters.querySelectorAll('#filter-exposure input').forEach(function (c) {
      c.onchange = function () { if (c.checked) state.exp.add(c.value); else state.exp.delete(c.value); render(); };
    });
  }
  rebind();

  // ---- pagination ----
  // pager renders rows[page] into body with renderRow and keeps a pager
  // line under it.
  function paginate(container, rows, size, renderPage) {
    var page = 0;
    var pages = Math.max(1, Math.ceil(rows.length / size));
    var info = el('span');
    var prev = el('button', { type: 'button', class: 'prev', onclick: function () { go(page - 1); } }, '‹ previous');
    var next = el('button', { type: 'button', class: 'next', onclick: function () { go(page + 1); } }, 'next ›');
    var pager = el('div', { class: 'pager' }, prev, info, next);
    var body = el('div', { class: 'page' });
    container.appendChild(body);
    if (pages > 1) container.appendChild(pager);
    function go(p) {
      page = Math.max(0, Math.min(pages - 1, p));
      body.textContent = '';
      var from = page * size, to = Math.min(rows.length, from + size);
      renderPage(body, rows.slice(from, to));
      info.textContent = (from + 1) + '–' + to + ' of ' + rows.length;
      prev.disabled = page === 0;
      next.disabled = page === pages - 1;
    }
    go(0);
  }

  // ---- finding details, shared by the matrix and the cards ----
  function locationsTable(locs) {
    var table = el('table', { class: 'locations' }, el('thead', null, el('tr', null,
      ['view', 'offset', 'partition', 'path', 'state', 'exposure'].map(function (h) { return el('th', { text: h }); }))));
    var tbody = el('tbody');
    function fill(n) {
      tbody.textContent = '';
      locs.slice(0, n).forEach(function (l) {
        tbody.appendChild(el('tr', { class: 'loc' },
          el('td', null, el('code', { text: dash(l.view || l.target) })),
          el('td', null, el('code', { text: hex(l.offset) })),
          el('td', { text: dash(l.partition) }),
          el('td', null, el('code', { text: dash(l.path) }), linkNames(l), decodedChain(l)),
          el('td', { text: dash(l.state) }),
          el('td', { text: dash(l.exposure) })));
      });
    }
    fill(LOC_PAGE);
    table.appendChild(tbody);
    if (locs.length <= LOC_PAGE) return table;
    var more = el('button', { type: 'button', onclick: function () { fill(locs.length); more.remove(); } },
      'show all ' + locs.length + ' locations');
    return el('div', null, table, more);
  }
  // linkNames lists the file's other names (hard links): "also: /etc/…".
  function linkNames(l) {
    var names = list(l.links);
    if (!names.length) return null;
    var text = names.join(', ');
    if (l.links_omitted) text += ' and ' + l.links_omitted + ' more';
    return el('div', { class: 'dim links', text: 'also: ' + text });
  }
  // decodedChain says how a secret inside compressed or archived bytes was
  // reached from its container: "in: gzip > cpio member etc/…".
  function decodedChain(l) {
    var steps = list(l.decoded);
    if (!steps.length) return null;
    var text = steps.map(function (s) { return s.member ? s.codec + ' member ' + s.member : s.codec; }).join(' > ');
    return el('div', { class: 'dim decoded', text: 'in: ' + text });
  }
  function remediation(f) {
    var steps = list(f.remediation);
    if (!steps.length) return null;
    return el('ul', { class: 'remediation' }, steps.map(function (s) {
      if (typeof s !== 'object') return el('li', { class: 'fix', text: s });
      return el('li', { class: 'fix' }, s.class ? el('b', { text: s.class }) : null, s.class ? ': ' : '',
        s.action || '', s.command ? [' ', el('code', { text: s.command })] : null);
    }));
  }
  function provenance(f) {
    var p = list(f.provenance);
    if (!p.length) return null;
    return el('ul', { class: 'provenance' }, p.map(function (x) {
      if (typeof x !== 'object') return el('li', { text: x });
      var mod = x.modified === true ? ' (modified since install)' : x.modified === false ? ' (unmodified)' : '';
      return el('li', null, [x.manager, x.package, x.version].filter(Boolean).join(' '), ' ',
        el('code', { text: x.path || '' }), mod, x.conffile ? ' conffile' : '', x.target ? el('span', { class: 'dim', text: ' in ' + x.target }) : null);
    }));
  }
  function reasons(f) {
    var r = list(f.reasons);
    if (!r.length) return null;
    return el('ul', { class: 'reasons' }, r.map(function (x) {
      if (typeof x !== 'object') return el('li', { text: x });
      return el('li', null, x.text || x.code || '', x.from || x.to ? el('span', { class: 'dim', text: ' (' + dash(x.from) + ' → ' + dash(x.to) + ')' }) : null);
    }));
  }
  function metadata(f) {
    var m = f.metadata || {};
    return cfg.metadata_keys.filter(function (k) { return m[k] != null && m[k] !== ''; })
      .map(function (k) { return k + '=' + m[k]; }).join(' ');
  }
  function sevBadge(s) { return el('span', { class: 'sev sev-' + (s || 'unknown'), text: (s || 'unknown').toUpperCase() }); }

  function findingBody(x) {
    var f = x.f;
    var dl = el('dl');
    function row(k, v) { if (v != null && v !== '' && !(Array.isArray(v) && !v.length)) dl.appendChild(el('div', null, el('dt', { text: k }), el('dd', null, v))); }
    row('description', f.description);
    row('category', f.category);
    row('fingerprint', el('code', { class: 'fp', text: f.fingerprint }));
    if (f.key_fingerprint) row('key fingerprint', el('code', { class: 'fp', text: f.key_fingerprint }));
    row('details', metadata(f));
    row('targets', x.targets.join(', '));
    row('provenance', provenance(f));
    row('reasons', reasons(f));
    if (f.truncated != null) row('truncated', kv(f.truncated));
    row('remediation', remediation(f));
    return el('div', { class: 'body' }, dl, el('h4', { text: plural((f.locations || []).length, 'location') }), locationsTable(f.locations || []));
  }

  // where names the first file holding a finding (or its first view).
  function where(f) {
    var l = (f.locations || []).filter(function (l) { return l.path; })[0] || (f.locations || [])[0];
    return l ? el('span', { class: 'where', text: l.path || l.view || l.target || '' }) : null;
  }

  function card(x) {
    var f = x.f;
    var d = el('details', { class: 'finding-card', id: 'finding-' + x.i, 'data-fingerprint': f.fingerprint, 'data-rule': f.rule },
      el('summary', null, sevBadge(f.severity),
        f.new === true ? el('span', { class: 'new', text: 'NEW' }) : null,
        el('span', { class: 'rule', text: f.rule }),
        x.exp.map(function (e) { return el('span', { class: 'exp exp-' + e, text: e }); }),
        el('code', { text: f.preview || '' }),
        el('span', { class: 'tag', text: plural((f.locations || []).length, 'location') }),
        where(f)));
    // The body is built when the card is first opened.
    d.addEventListener('toggle', function () {
      if (d.open && d.children.length === 1) d.appendChild(findingBody(x));
    });
    return d;
  }

  // ---- lifetime matrices ----
  var MARK = { file: 'x', residue: 'r', public: 'p', absent: '·' };
  var TITLE = { file: 'a file holds it', residue: 'only residue (free blocks, unreferenced clusters)', public: 'known public', absent: 'absent' };
  function column(v, t) {
    var named = v.name && v.name !== v.kind;
    var label = v.kind === 'current' ? 'now' : v.kind === 'unreferenced' ? 'unref' + (named ? ':' + v.name : '') :
      v.kind === 'memory' ? 'mem' + (named ? ':' + v.name : '') : named ? v.name : v.kind || v.id;
    return { view: v.id, label: label, kind: v.kind, time: v.created, target: t };
  }
  function buildGroups() {
    var byPath = new Map((data.targets || []).map(function (t) { return [t.path, t]; }));
    var covered = new Set();
    var groups = [];
    (data.timelines || []).forEach(function (tl) {
      var cols = (tl.points || []).map(function (p) {
        return { view: p.view, label: p.label || p.name || p.view, kind: p.kind, time: p.time, target: p.target };
      });
      var seen = new Set(cols.map(function (c) { return c.view; }));
      var memory = cols.filter(function (c) { return c.kind === 'memory'; });
      list(tl.targets).forEach(function (path) {
        covered.add(path);
        var t = byPath.get(path);
        if (!t) return;
        (t.views || []).forEach(function (v) {
          if (seen.has(v.id)) return;
          // A save's extra memory views belong to its point.
          if (v.kind === 'memory' && memory.some(function (c) { return v.id.indexOf(c.view) === 0; })) return;
          seen.add(v.id);
          cols.push(column(v, path));
        });
      });
      var residue = new Map();
      (tl.secrets || []).forEach(function (s) { if (s.residue) residue.set(s.fingerprint, new Set(s.residue)); });
      groups.push({ title: 'VM ' + tl.vm, sub: list(tl.targets).join(', '), targets: new Set(list(tl.targets)), cols: cols, residue: residue, memory: memory });
    });
    (data.targets || []).forEach(function (t) {
      if (covered.has(t.path) || !(t.views || []).length) return;
      // Without a timeline, views go in time order as the scanner's
      // timelines have them: backing files, dated views, the current
      // state, then unreferenced bytes; layers keep their order.
      var when = function (v) {
        return v.kind === 'backing' && !v.created ? 0 : v.kind === 'current' ? 2 : v.kind === 'unreferenced' ? 3 : 1;
      };
      var views = t.views.map(function (v, i) { return { v: v, i: i }; }).sort(function (a, b) {
        return when(a.v) - when(b.v) || cmp(a.v.created || '', b.v.created || '') || a.i - b.i;
      });
      groups.push({ title: t.path, sub: t.format || '', targets: new Set([t.path]),
        cols: views.map(function (x) { return column(x.v, t.path); }), residue: new Map(), memory: [] });
    });
    // The secrets of each target, in display order, so that a store of
    // many images costs one pass over the findings, not one per image.
    var byTarget = new Map();
    items.forEach(function (x, k) {
      if (x.section === 'rollback' || x.section === 'cloned') return;
      x.targets.forEach(function (t) {
        if (!byTarget.has(t)) byTarget.set(t, []);
        byTarget.get(t).push(k);
      });
    });
    groups.forEach(function (g) {
      var at = new Map(g.cols.map(function (c, i) { return [c.view, i]; }));
      var mine = [];
      g.targets.forEach(function (t) { mine = mine.concat(byTarget.get(t) || []); });
      g.rows = [];
      uniq(mine).sort(function (a, b) { return a - b; }).forEach(function (k) {
        var x = items[k];
        var cells = g.cols.map(function () { return null; });
        var locs = [];
        (x.f.locations || []).forEach(function (l) {
          if (!g.targets.has(l.target)) return;
          var ci = at.get(l.view);
          if (ci === undefined) {
            var m = g.memory.filter(function (c) { return String(l.view).indexOf(c.view) === 0; })[0];
            if (m) ci = at.get(m.view);
          }
          if (ci === undefined) return;
          (cells[ci] = cells[ci] || []).push(l);
          locs.push(l);
        });
        if (!locs.length) return;
        var res = g.residue.get(x.f.fingerprint);
        g.rows.push({ x: x, locs: locs, cells: cells.map(function (ls, ci) {
          var col = g.cols[ci];
          if (!ls) return 'absent';
          if (x.section === 'public') return 'public';
          if ((res && res.has(col.view)) || col.kind === 'unreferenced' ||
              ls.every(function (l) { return l.state === 'free' || l.view_kind === 'unreferenced'; })) return 'residue';
          return 'file';
        }) });
      });
    });
    return groups;
  }
  var groups = buildGroups();

  function matrix(g, rows) {
    var wrap = el('div', { class: 'matrix-group', 'data-vm': g.title });
    wrap.appendChild(el('h3', null, g.title, ' ', el('span', { class: 'dim', text: g.sub })));
    var shownRows = rows.filter(function (r) { return matches(r.x); });
    wrap.appendChild(el('p', { class: 'dim', text: plural(shownRows.length, 'secret') + (shownRows.length < rows.length ? ' of ' + rows.length + ' (filtered)' : '') }));
    if (!shownRows.length) return wrap;
    var head = el('tr', null, el('th', { text: 'secret' }), g.cols.map(function (c) {
      return el('th', { class: 'col', title: c.view + (c.time ? ' · ' + c.time : ''), 'data-view': c.view },
        c.label, el('span', { text: c.kind + (c.time ? ' ' + String(c.time).slice(0, 10) : '') }));
    }));
    var box = el('div', { class: 'matrix-wrap' });
    wrap.appendChild(box);
    paginate(box, shownRows, MATRIX_PAGE, function (body, page) {
      var tbody = el('tbody');
      page.forEach(function (r) {
        var f = r.x.f;
        var label = el('td', { class: 'secret', title: 'show locations and remediation' }, sevBadge(f.severity), ' ',
          el('b', { text: f.rule }), ' ', el('code', { text: f.preview || '' }), ' ',
          el('code', { class: 'fp', text: (f.fingerprint || '').slice(0, 19) + '…' }));
        var tr = el('tr', { class: 'secret-row', 'data-fingerprint': f.fingerprint, 'data-rule': f.rule, 'data-severity': f.severity }, label,
          r.cells.map(function (c, ci) {
            return el('td', { class: 'cell c-' + c, title: g.cols[ci].label + ': ' + TITLE[c], 'data-class': c }, MARK[c]);
          }));
        var detail = null;
        label.addEventListener('click', function () {
          if (detail) { detail.remove(); detail = null; tr.classList.remove('open'); return; }
          detail = el('tr', { class: 'detail' }, el('td', { colspan: String(g.cols.length + 1) },
            locationsTable(r.locs), remediation(f), provenance(f), reasons(f)));
          tr.after(detail);
          tr.classList.add('open');
        });
        tbody.appendChild(tr);
      });
      body.appendChild(el('table', { class: 'matrix' }, el('thead', null, head.cloneNode(true)), tbody));
    });
    return wrap;
  }

  // ---- the page ----
  var lifetime = el('section', { id: 'lifetime' });
  var findingsSec = el('section', { id: 'findings' });
  var riskSec = el('section', { id: 'rollback' });
  var clonedSec = el('section', { id: 'cloned' });
  var sections = {};
  cfg.sections.forEach(function (s) { sections[s.ID] = s; });

  // Subgroups of "outside the guest's control", by most surprising class.
  var CLASS_TITLE = { snapshot: 'kept by a snapshot', backing: 'in a backing file', deleted: 'deleted but not wiped',
    unreferenced: 'in unreferenced host bytes', memory: 'in saved RAM', layer: 'in a deleted container layer' };
  function heading(title, shown, total) { return title + ' (' + (shown === total ? total : shown + ' of ' + total) + ')'; }

  function group(container, title, why, rows, total, id, level) {
    var box = el('div', { class: 'finding-group', id: id });
    box.appendChild(el(level || 'h3', { class: 'group-head', text: heading(title, rows.length, total) }));
    if (why) box.appendChild(el('p', { class: 'dim', text: why }));
    if (!rows.length) box.appendChild(el('p', { class: 'empty', text: total ? 'all hidden by the filters' : 'none' }));
    else paginate(box, rows, PAGE, function (body, page) { page.forEach(function (x) { body.appendChild(card(x)); }); });
    container.appendChild(box);
  }

  function render() {
    var visible = items.filter(matches);
    shown.textContent = 'showing ' + visible.length + ' of ' + plural(items.length, 'finding');

    lifetime.textContent = '';
    lifetime.appendChild(el('h2', { text: 'Lifetime' }));
    lifetime.appendChild(el('p', { class: 'dim', text: 'where each secret exists along each VM or image: columns are views, oldest first ("now" is the current state), then unreferenced host bytes; click a secret for its locations and remediation' }));
    lifetime.appendChild(el('div', { class: 'legend' }, ['file', 'residue', 'public', 'absent'].map(function (c) {
      return el('span', null, el('i', { class: 'c-' + c }), MARK[c] + ' ' + TITLE[c]);
    })));
    // VMs and images without secrets are counted, not drawn; past the
    // first few, a matrix is drawn when it is opened.
    var withRows = groups.filter(function (g) { return g.rows.length; });
    if (!withRows.length) lifetime.appendChild(el('p', { class: 'empty', text: 'no secrets' }));
    withRows.forEach(function (g, k) {
      if (k < OPEN_MATRICES) { lifetime.appendChild(matrix(g, g.rows)); return; }
      var d = el('details', { class: 'fold matrix-fold' }, el('summary', { text: g.title + ' (' + plural(g.rows.length, 'secret') + ')' }));
      d.addEventListener('toggle', function () { if (d.open && d.children.length === 1) d.appendChild(matrix(g, g.rows)); });
      lifetime.appendChild(d);
    });
    if (groups.length > withRows.length) {
      lifetime.appendChild(el('p', { class: 'dim', text: (groups.length - withRows.length) + (groups.length - withRows.length === 1 ? ' VM or image' : ' VMs or images') + ' without secrets' }));
    }

    findingsSec.textContent = '';
    findingsSec.appendChild(el('h2', { text: 'Findings' }));
    var all = function (s) { return items.filter(function (x) { return x.section === s; }); };
    var vis = function (s) { return visible.filter(function (x) { return x.section === s; }); };
    var out = sections.outside, outAll = all('outside'), outVis = vis('outside');
    var primary = function (x) { return x.exp[0] || ''; };
    var classes = ordered(outAll.map(primary), cfg.exposures);
    if (classes.length <= 1 || !outVis.length) {
      group(findingsSec, out.Title, out.Why, outVis, outAll.length, 'group-outside');
    } else {
      // Outside the guest's control, by most surprising exposure class.
      var box = el('div', { class: 'finding-group', id: 'group-outside' },
        el('h3', { class: 'group-head', text: heading(out.Title, outVis.length, outAll.length) }),
        el('p', { class: 'dim', text: out.Why }));
      classes.forEach(function (c) {
        var v = outVis.filter(function (x) { return primary(x) === c; });
        if (v.length) group(box, CLASS_TITLE[c] || c || 'unknown', null, v, outAll.filter(function (x) { return primary(x) === c; }).length, 'group-outside-' + c);
      });
      findingsSec.appendChild(box);
    }
    group(findingsSec, sections.live.Title, sections.live.Why, vis('live'), all('live').length, 'group-live');
    var pubAll = all('public');
    if (pubAll.length) {
      var fold = el('details', { class: 'fold', id: 'group-public-fold' }, el('summary', { text: sections.public.Title + ' (' + pubAll.length + ')' }));
      group(fold, sections.public.Title, sections.public.Why, vis('public'), pubAll.length, 'group-public');
      findingsSec.appendChild(fold);
    }

    riskSec.textContent = '';
    var risks = all('rollback');
    if (risks.length) group(riskSec, sections.rollback.Title, sections.rollback.Why, vis('rollback'), risks.length, 'group-rollback', 'h2');
    clonedSec.textContent = '';
    var cloned = all('cloned');
    if (cloned.length) group(clonedSec, sections.cloned.Title, sections.cloned.Why, vis('cloned'), cloned.length, 'group-cloned', 'h2');
  }

  app.appendChild(filters);
  app.appendChild(lifetime);
  app.appendChild(findingsSec);
  app.appendChild(riskSec);
  app.appendChild(clonedSec);
  render();
  app.hidden = false;
  // The first render is done: tests and measurements read this mark.
  performance.mark('imgaudit-rendered');
  document.documentElement.setAttribute('data-rendered', String(Math.round(performance.now())));
})();
