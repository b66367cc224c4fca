// A single-choice question: the demo content type of `npm start` and the player's browser test. H5P's
// content-type contract: a constructor taking the content's parameters (content/content.json) and its id,
// and attach($container). Text goes in through textContent only, so content.json cannot inject markup.
// Answering sends an xAPI "answered" statement through H5P's own dispatcher (the page decides what to do
// with it; nothing is posted anywhere by this library). Its state (getCurrentState) is the answer chosen,
// which the player saves and hands back as extras.previousState: an answered question shows its answer again.
var H5P = H5P || {};
H5P.AadaQuiz = (function () {
  'use strict';

  function AadaQuiz(params, contentId, extras) {
    if (H5P.EventDispatcher) H5P.EventDispatcher.call(this);
    this.params = params || {};
    this.contentId = contentId;
    var previous = extras && extras.previousState;
    // Only an index of one of its answers: a saved state is the reader's, but checked all the same.
    this.answered =
      previous && typeof previous.answer === 'number' && (this.params.answers || [])[previous.answer]
        ? previous.answer
        : null;
  }
  if (H5P.EventDispatcher) {
    AadaQuiz.prototype = Object.create(H5P.EventDispatcher.prototype);
    AadaQuiz.prototype.constructor = AadaQuiz;
  }

  AadaQuiz.prototype.attach = function ($container) {
    var self = this;
    var root = $container.get(0);
    root.classList.add('h5p-aada-quiz');
    root.textContent = '';
    var question = document.createElement('p');
    question.className = 'h5p-aada-quiz-question';
    question.textContent = String(self.params.question || '');
    var list = document.createElement('ul');
    list.className = 'h5p-aada-quiz-answers';
    var feedback = document.createElement('p');
    feedback.className = 'h5p-aada-quiz-feedback';
    feedback.setAttribute('aria-live', 'polite');
    function show(answer, button) {
      var correct = answer.correct === true;
      button.classList.add(correct ? 'h5p-aada-quiz-correct' : 'h5p-aada-quiz-wrong');
      feedback.textContent = correct
        ? String(self.params.correctFeedback || 'Correct.')
        : String(self.params.wrongFeedback || 'Not quite: try again.');
      root.setAttribute('data-answered', correct ? 'correct' : 'wrong');
      return correct;
    }
    (self.params.answers || []).forEach(function (answer, index) {
      var item = document.createElement('li');
      var button = document.createElement('button');
      button.type = 'button';
      button.textContent = String(answer.text || '');
      button.addEventListener('click', function () {
        self.answered = index;
        var correct = show(answer, button);
        if (typeof self.triggerXAPIScored === 'function') self.triggerXAPIScored(correct ? 1 : 0, 1, 'answered');
      });
      item.appendChild(button);
      list.appendChild(item);
      if (self.answered === index) show(answer, button);
    });
    root.appendChild(question);
    root.appendChild(list);
    root.appendChild(feedback);
  };

  /** What the player saves: the answer chosen, or nothing before one is. */
  AadaQuiz.prototype.getCurrentState = function () {
    return this.answered === null ? undefined : { answer: this.answered };
  };

  return AadaQuiz;
})();
