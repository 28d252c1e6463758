// Count the images the browser actually drew on this page (the site's test reads these from the DOM).
window.addEventListener("load", function () {
  var images = document.querySelectorAll("article img");
  var drawn = Array.prototype.filter.call(images, function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.images = images.length;
  document.body.dataset.imagesDrawn = drawn.length;
});
