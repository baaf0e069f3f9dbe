// anchorml dashboard: models & lineage, jobs (live), nodes. Plain DOM, no innerHTML with data.
"use strict";

const WEI = 10n ** 18n;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "title") node.title = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const pill = (text, kind = text) => el("span", { class: `pill ${kind}` }, text);
const short = (hex, n = 6) => (hex && hex.length > 2 * n + 2 ? `${hex.slice(0, n + 2)}…${hex.slice(-n)}` : hex || "");
const mono = (text, full) => el("span", { class: "mono", title: full || text }, text);

function eth(wei) {
  try {
    const value = BigInt(wei);
    const whole = value / WEI;
    const frac = (value % WEI).toString().padStart(18, "0").slice(0, 4).replace(/0+$/, "");
    return frac ? `${whole}.${frac}` : `${whole}`;
  } catch (_) {
    return String(wei);
  }
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function fill(id, rows, count) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...rows);
  if (!rows.length) {
    const cols = document.querySelectorAll(`#${id} thead th`).length;
    body.append(el("tr", {}, el("td", { colspan: String(cols), class: "muted" }, "none yet")));
  }
  document.getElementById(`${id}-count`).textContent = `(${count})`;
}

function renderModels(models, lineage) {
  const rows = models.data.map((m) =>
    el("tr", {},
      el("td", {}, el("strong", {}, m.name), el("div", { class: "muted" }, m.latest ? `latest: ${m.latest}` : "")),
      el("td", {}, pill(m.access)),
      el("td", {}, mono(short(m.owner), m.owner)),
      el("td", {}, m.versions.map((v) =>
        pill(v.tag, v.revoked ? "revoked" : "", ))),
      el("td", {}, Object.entries(m.aliases).map(([a, ref]) => pill(`${a} → ${ref.split("@")[1]}`, "alias"))),
    ));
  fill("models", rows, models.data.length);
  const byId = Object.fromEntries(lineage.nodes.map((n) => [n.id, n]));
  const items = lineage.edges.map((e) =>
    el("li", {},
      el("strong", {}, byId[e.parent] ? byId[e.parent].ref : short(e.parent)),
      " → ",
      el("strong", {}, byId[e.child] ? byId[e.child].ref : short(e.child)),
      e.job_id ? el("span", { class: "muted" }, ` (job #${e.job_id})`) : el("span", { class: "muted" }, " (pushed)")));
  const list = document.getElementById("lineage");
  list.replaceChildren(...items);
  if (!items.length) list.append(el("li", { class: "muted" }, `${lineage.nodes.length} versions, no derived versions yet`));
}

function renderJobs(jobs) {
  const rows = jobs.data.map((j) =>
    el("tr", { "data-job": String(j.job_id) },
      el("td", {}, String(j.job_id)),
      el("td", {}, j.kind),
      el("td", {}, j.model),
      el("td", {}, pill(j.status), j.claims && !["finalized", "expired", "cancelled"].includes(j.status) ? el("span", { class: "muted" }, ` ${j.claims} claim(s)`) : null),
      el("td", {}, String(j.redundancy)),
      el("td", {}, eth(j.reward_wei)),
      el("td", {}, j.result_cid ? el("a", { href: `/ipfs/${j.result_cid}` }, mono(short(j.result_cid, 8), j.result_cid)) : el("span", { class: "muted" }, "—")),
    ));
  fill("jobs", rows, jobs.data.length);
  followOpenJob(jobs.data.find((j) => !["finalized", "expired", "cancelled"].includes(j.status)));
}

function renderNodes(nodes) {
  const rows = nodes.data.map((n) =>
    el("tr", {},
      el("td", {}, mono(short(n.address), n.address)),
      el("td", {}, mono(n.endpoint)),
      el("td", {}, eth(n.stake_wei)),
      el("td", {}, pill(n.eligible ? "yes" : "no")),
      el("td", {}, n.serving.map((s) => pill(s, "serving"))),
      el("td", {}, String(n.delivered)),
      el("td", {}, String(n.slashes)),
    ));
  fill("nodes", rows, nodes.data.length);
}

// Live status of the newest unsettled job over Server-Sent Events; the table refreshes on change.
let following = null;
function followOpenJob(job) {
  if (!job || following === job.job_id || !window.EventSource) return;
  following = job.job_id;
  const source = new EventSource(`/v1/jobs/${job.job_id}/events`);
  source.addEventListener("status", () => refreshJobs());
  source.onerror = () => { source.close(); following = null; };
}

async function refreshJobs() {
  renderJobs(await getJSON("/v1/jobs?limit=25"));
}

async function refresh() {
  const live = document.getElementById("live");
  try {
    const [health, models, lineage, jobs, nodes] = await Promise.all([
      getJSON("/healthz"), getJSON("/v1/registry/models"), getJSON("/v1/registry/lineage"),
      getJSON("/v1/jobs?limit=25"), getJSON("/v1/nodes"),
    ]);
    document.getElementById("chain").textContent =
      `chain ${health.chain_id} · block ${health.block} · ${health.inprocess ? "in-process inference on" : "workers only"}`;
    renderModels(models, lineage);
    renderJobs(jobs);
    renderNodes(nodes);
    live.className = "pill";
    live.textContent = "live";
    document.body.dataset.loaded = "true";
  } catch (error) {
    live.className = "pill stale";
    live.textContent = "offline";
    console.error(error);
  }
}

refresh();
setInterval(refresh, 3000);
