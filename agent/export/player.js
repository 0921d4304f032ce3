/* LessonForge lesson page: chapters, transcript, captions and the learner questions.
   In a SCORM 1.2 package it reports to the LMS through the API object the LMS provides
   (window.API in a parent frame or the opener), as SCORM 1.2 runtimes expect. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("lesson-data").textContent);
  var video = document.getElementById("video");
  var LETTERS = "abcdefghij";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function clock(t) {
    t = Math.max(0, Math.floor(t));
    var h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }
  function seek(t) {
    video.currentTime = t + 0.01;
    var played = video.play();
    if (played && played.catch) played.catch(function () {});
    video.scrollIntoView({block: "nearest"});
  }

  // ------------------------------------------------------------------ SCORM 1.2
  // The LMS puts an object named API on a window above this one: a parent frame or the opener.
  function findAPI(win) {
    for (var hops = 0; win && hops < 12; hops++) {
      try { if (win.API) return win.API; } catch (e) { return null; }  // a frame of another origin
      if (!win.parent || win.parent === win) break;
      win = win.parent;
    }
    return null;
  }
  var lms = {
    api: null, started: Date.now(), status: "", finished: false, interactions: 0,
    connect: function () {
      if (!data.scorm) return;
      var api = findAPI(window);
      if (!api && window.opener) api = findAPI(window.opener);
      var note = document.getElementById("lms-note");
      if (!api || String(api.LMSInitialize("")) !== "true") {
        note.textContent = "No learning platform answered: your progress and score are not recorded.";
        note.hidden = false;
        return;
      }
      this.api = api;
      this.status = String(api.LMSGetValue("cmi.core.lesson_status") || "");
      if (this.status === "" || this.status === "not attempted") this.set("cmi.core.lesson_status", "incomplete");
      var mastery = parseFloat(api.LMSGetValue("cmi.student_data.mastery_score"));
      if (!isNaN(mastery)) data.mastery = mastery;
      var at = parseFloat(api.LMSGetValue("cmi.core.lesson_location"));
      if (at > 0 && at < (data.duration || Infinity) - 1) {  // back where the learner left off
        if (video.readyState >= 1) video.currentTime = at;
        else video.addEventListener("loadedmetadata", function () { video.currentTime = at; }, {once: true});
      }
      this.commit();
    },
    set: function (key, value) {
      if (this.api) this.api.LMSSetValue(key, String(value));
    },
    commit: function () {
      if (this.api) this.api.LMSCommit("");
    },
    interaction: function (id, response, correct, ok) {
      if (!this.api) return;
      var key = "cmi.interactions." + this.interactions++ + ".";  // write-only in SCORM 1.2: one per answer
      this.set(key + "id", id);
      this.set(key + "type", "choice");
      this.set(key + "student_response", response);
      this.set(key + "correct_responses.0.pattern", correct);
      this.set(key + "result", ok ? "correct" : "wrong");
    },
    report: function (status, score) {
      if (!this.api) return;
      if (this.status === "passed" && status !== "passed") return;  // a later try never undoes a pass
      if (score !== undefined) {
        this.set("cmi.core.score.min", 0);
        this.set("cmi.core.score.max", 100);
        this.set("cmi.core.score.raw", score);
      }
      this.status = status;
      this.set("cmi.core.lesson_status", status);
      this.commit();
    },
    finish: function () {
      if (!this.api || this.finished) return;
      this.finished = true;
      var secs = (Date.now() - this.started) / 1000;
      var h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
      this.set("cmi.core.session_time", String(h).padStart(4, "0") + ":" + String(m).padStart(2, "0") + ":" +
        (s < 10 ? "0" : "") + s.toFixed(2));
      this.set("cmi.core.lesson_location", Math.floor(video.currentTime || 0));
      var done = ["passed", "completed", "failed"].indexOf(this.status) >= 0;
      this.set("cmi.core.exit", done ? "" : "suspend");
      this.commit();
      this.api.LMSFinish("");
    }
  };

  // ------------------------------------------------------------------ chapters and transcript
  var chapterItems = [], transcriptItems = [];
  data.scenes.forEach(function (scene) {
    var li = el("li");
    var b = el("button", {type: "button", "class": "seek"});
    b.appendChild(el("span", {"class": "time"}, clock(scene.start)));
    b.appendChild(document.createTextNode(scene.title));
    b.addEventListener("click", function () { seek(scene.start); });
    li.appendChild(b);
    document.getElementById("chapters").appendChild(li);
    chapterItems.push(li);

    var sec = el("section", {id: "scene-" + scene.n});
    var h = el("h3");
    var tb = el("button", {type: "button", "aria-label": "Play from " + clock(scene.start)}, clock(scene.start));
    tb.addEventListener("click", function () { seek(scene.start); });
    h.appendChild(tb);
    h.appendChild(document.createTextNode(" " + scene.title));
    sec.appendChild(h);
    sec.appendChild(el("p", {}, scene.narration));
    document.getElementById("transcript").appendChild(sec);
    transcriptItems.push(sec);
  });
  var current = -1;
  video.addEventListener("timeupdate", function () {
    var t = video.currentTime, k = -1;
    data.scenes.forEach(function (scene, i) { if (t >= scene.start - 0.05) k = i; });
    if (k === current) return;
    current = k;
    chapterItems.concat(transcriptItems).forEach(function (node) { node.removeAttribute("aria-current"); });
    if (k >= 0) {
      chapterItems[k].setAttribute("aria-current", "true");
      transcriptItems[k].setAttribute("aria-current", "true");
    }
  });

  // ------------------------------------------------------------------ questions
  var form = document.getElementById("quiz-form");
  var result = document.getElementById("quiz-result");
  var questions = (data.quiz && data.quiz.questions) || [];

  function buildQuiz() {
    form.textContent = "";
    result.textContent = "";
    questions.forEach(function (q, i) {
      var fs = el("fieldset", {id: "question-" + (i + 1)});
      fs.appendChild(el("legend", {}, (i + 1) + ". " + q.stem));
      q.options.forEach(function (option, j) {
        var label = el("label", {"class": "option"});
        var input = el("input", {type: "radio", name: "q" + (i + 1), value: String(j + 1)});
        label.appendChild(input);
        label.appendChild(document.createTextNode(" " + option));
        fs.appendChild(label);
      });
      fs.appendChild(el("p", {"class": "feedback", "aria-live": "polite"}));
      form.appendChild(fs);
    });
    var actions = el("p", {"class": "actions"});
    actions.appendChild(el("button", {type: "submit", id: "check"}, "Check answers"));
    form.appendChild(actions);
  }

  function check(event) {
    event.preventDefault();
    var chosen = questions.map(function (q, i) {
      var picked = form.querySelector('input[name="q' + (i + 1) + '"]:checked');
      return picked ? parseInt(picked.value, 10) : 0;
    });
    var left = chosen.filter(function (c) { return !c; }).length;
    if (left) {
      result.textContent = "Answer every question first (" + left + " left).";
      return;
    }
    var right = 0;
    questions.forEach(function (q, i) {
      var ok = chosen[i] === q.answer;
      if (ok) right++;
      var fb = form.querySelectorAll(".feedback")[i];
      fb.className = "feedback " + (ok ? "ok" : "bad");
      fb.textContent = (ok ? "Right. " : "Not quite: the answer is " + q.options[q.answer - 1] + ". ") + q.explanation + " ";
      var scene = data.scenes[q.scene - 1];
      if (scene) {
        var again = el("button", {type: "button", "class": "seek-scene"}, "Watch scene " + q.scene + " again");
        again.addEventListener("click", function () { seek(scene.start); });
        fb.appendChild(again);
      }
      lms.interaction("question-" + (i + 1), LETTERS.charAt(chosen[i] - 1), LETTERS.charAt(q.answer - 1), ok);
    });
    var score = Math.round(100 * right / questions.length);
    var passed = score >= data.mastery;
    result.textContent = "You got " + right + " of " + questions.length + " (" + score + "%). " +
      (passed ? "Passed." : "Not yet: " + data.mastery + "% passes. Watch the scenes named above and try again.");
    form.querySelectorAll("input").forEach(function (input) { input.disabled = true; });
    var again = el("button", {type: "button", id: "retry"}, "Try again");
    again.addEventListener("click", buildQuiz);
    form.querySelector(".actions").appendChild(again);
    document.getElementById("check").disabled = true;
    lms.report(passed ? "passed" : "failed", score);
  }

  if (questions.length) {
    document.getElementById("quiz").hidden = false;
    buildQuiz();
    form.addEventListener("submit", check);
  }
  video.addEventListener("ended", function () {
    if (!questions.length) lms.report("completed");
    else document.getElementById("quiz").scrollIntoView({behavior: "smooth"});
  });
  lms.connect();
  window.addEventListener("pagehide", function () { lms.finish(); });
  window.addEventListener("beforeunload", function () { lms.finish(); });
  window.lessonforge = {data: data, lms: lms};
}());
