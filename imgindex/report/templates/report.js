{# The page's one script: draws the groups from the JSON data block, with textContent only.
   The page's Content-Security-Policy pins it by the sha256 of exactly what this renders. #}

(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var groups = data.groups, per = data.perPage, page = 0;
  var pages = Math.max(1, Math.ceil(groups.length / per));
  var list = document.getElementById("groups");
  var ROT = {0: "", 90: "turned 90\u00b0", 180: "turned 180\u00b0", 270: "turned 270\u00b0"};
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function size(n) {
    var units = ["B", "KB", "MB", "GB"], u = 0;
    while (n >= 1000 && u < units.length - 1) { n /= 1000; u++; }
    return (u ? n.toFixed(1) : n) + " " + units[u];
  }
  function member(m) {
    var path = m[0], folder = m[1], w = m[2], h = m[3], bytes = m[4], fmt = m[5], keeper = m[6],
        mse = m[7], rot = m[8], mirrored = m[9], thumb = m[10], why = m[11], kept = m[12], signal = m[13];
    var box = el("div", keeper ? "member keeper" : kept ? "member kept" : "member");
    if (thumb !== null) {
      var img = el("img", "thumb");
      img.alt = path.split("/").pop();
      img.src = "data:image/jpeg;base64," + data.thumbs[thumb];
      box.appendChild(img);
    } else {
      box.appendChild(el("div", "missing", why));
    }
    var distance = "MSE " + (mse === null ? "?" : mse.toFixed(3)) + (signal ? " \u00b7 matched by " + signal : "");
    var how = keeper ? kept : kept ? kept + " \u00b7 " + distance : distance;
    var turn = [ROT[rot] || "", mirrored ? "mirrored" : ""].filter(Boolean).join(", ");
    box.appendChild(el("span", "badge", how + (turn ? " \u00b7 " + turn : "")));
    box.appendChild(el("div", "facts", w + "\u00d7" + h + " \u00b7 " + size(bytes) + " \u00b7 " + fmt));
    box.appendChild(el("div", "name", path.slice(folder.length).replace(/^\//, "")));
    box.appendChild(el("div", "path", folder + "/"));
    box.title = path;
    return box;
  }
  function show(p) {
    page = Math.min(Math.max(p, 0), pages - 1);
    list.textContent = "";
    groups.slice(page * per, (page + 1) * per).forEach(function (g, k) {
      var box = el("section", "group");
      box.dataset.groupId = g[0];
      var head = el("div", "group-head");
      head.appendChild(el("b", "", "Group " + (page * per + k + 1)));
      head.appendChild(document.createTextNode(" \u00b7 " + g[2].length + " images \u00b7 " + size(g[1]) +
                                               " reclaimable" +
                                               (data.keptNotes[g[0]] ? " \u00b7 " + data.keptNotes[g[0]] : "")));
      box.appendChild(head);
      var row = el("div", "members");
      g[2].forEach(function (m) { row.appendChild(member(m)); });
      box.appendChild(row);
      list.appendChild(box);
    });
    document.querySelectorAll(".page-label").forEach(function (e) {
      e.textContent = "Page " + (page + 1) + " of " + pages + " (" + groups.length + " groups)";
    });
    document.querySelectorAll("button.prev").forEach(function (b) { b.disabled = page === 0; });
    document.querySelectorAll("button.next").forEach(function (b) { b.disabled = page >= pages - 1; });
    document.body.dataset.page = page;
  }
  document.querySelectorAll("button.prev").forEach(function (b) {
    b.addEventListener("click", function () { show(page - 1); window.scrollTo(0, list.offsetTop - 60); });
  });
  document.querySelectorAll("button.next").forEach(function (b) {
    b.addEventListener("click", function () { show(page + 1); window.scrollTo(0, list.offsetTop - 60); });
  });
  document.body.dataset.pages = pages;
  show(0);
})();
