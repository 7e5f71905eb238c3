//! The decoded, compact in-memory form of a data set: [`ImageStore`].
//!
//! Every image of every supported data set is 32x32 RGB, so a store is one `Vec<u8>` of
//! `N * 3072` bytes in CHW order (all red rows, then green, then blue), one label per image and
//! the class names. CIFAR-10's 60k images take 184 MB; SVHN's 630k take 1.9 GB.

use std::collections::BTreeMap;

/// Height and width of every image, in pixels.
pub const IMAGE_SIDE: usize = 32;
/// Colour channels of every image (RGB).
pub const CHANNELS: usize = 3;
/// Bytes of one image in a store: `3 * 32 * 32`.
pub const IMAGE_BYTES: usize = CHANNELS * IMAGE_SIDE * IMAGE_SIDE;

/// N images of 3x32x32 `u8` pixels (CHW), their labels and the class names.
///
/// Labels are indices into [`classes`](Self::classes). A store is immutable once built; splits
/// and caps make new stores with [`subset`](Self::subset).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ImageStore {
    pixels: Vec<u8>,
    labels: Vec<u16>,
    classes: Vec<String>,
}

impl ImageStore {
    /// A store from raw CHW pixels, labels and class names.
    ///
    /// # Panics
    ///
    /// If `pixels.len()` is not `labels.len() * 3072`, if a label is not below
    /// `classes.len()`, or if there are more than 65536 classes. Readers check what they read
    /// from files and report a [`DataError`](crate::DataError) before building a store.
    pub fn new(pixels: Vec<u8>, labels: Vec<u16>, classes: Vec<String>) -> Self {
        assert_eq!(
            pixels.len(),
            labels.len() * IMAGE_BYTES,
            "an image store needs 3072 pixel bytes per label"
        );
        assert!(
            classes.len() <= usize::from(u16::MAX) + 1,
            "too many classes"
        );
        if let Some(bad) = labels.iter().find(|&&l| usize::from(l) >= classes.len()) {
            panic!("label {bad} is out of range for {} classes", classes.len());
        }
        Self {
            pixels,
            labels,
            classes,
        }
    }

    /// An empty store with the given class names.
    pub fn empty(classes: Vec<String>) -> Self {
        Self::new(Vec::new(), Vec::new(), classes)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the store holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 3072 CHW bytes of image `index`.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.pixels[index * IMAGE_BYTES..(index + 1) * IMAGE_BYTES]
    }

    /// The label of image `index`.
    ///
    /// # Panics
    ///
    /// If `index >= self.len()`.
    pub fn label(&self, index: usize) -> usize {
        usize::from(self.labels[index])
    }

    /// All pixels, `len() * 3072` bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// All labels.
    pub fn labels(&self) -> &[u16] {
        &self.labels
    }

    /// The class names; label `i` is `classes()[i]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// How many images each class has, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &label in &self.labels {
            counts[usize::from(label)] += 1;
        }
        counts
    }

    /// A new store with the images at `indices`, in that order.
    ///
    /// # Panics
    ///
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(indices.len() * IMAGE_BYTES);
        let mut labels = Vec::with_capacity(indices.len());
        for &index in indices {
            pixels.extend_from_slice(self.image(index));
            labels.push(self.labels[index]);
        }
        Self {
            pixels,
            labels,
            classes: self.classes.clone(),
        }
    }

    /// The images of `self` followed by those of `other`.
    ///
    /// # Panics
    ///
    /// If the two stores have different class names.
    pub fn concat(mut self, other: &ImageStore) -> Self {
        assert_eq!(
            self.classes, other.classes,
            "stores to join need the same classes"
        );
        self.pixels.extend_from_slice(&other.pixels);
        self.labels.extend_from_slice(&other.labels);
        self
    }

    /// Splits the store into its parts: pixels, labels, class names.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u16>, Vec<String>) {
        (self.pixels, self.labels, self.classes)
    }

    /// The indices of the images of each class, in store order, keyed by label.
    pub fn indices_by_class(&self) -> BTreeMap<usize, Vec<usize>> {
        let mut map: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (index, &label) in self.labels.iter().enumerate() {
            map.entry(usize::from(label)).or_default().push(index);
        }
        map
    }
}

/// The parts of a data set as published, before any train/validation split: what the readers
/// produce and what the cache stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedSet {
    /// The published training images.
    pub train: ImageStore,
    /// The published test images.
    pub test: ImageStore,
    /// Additional training images (SVHN's `extra_32x32.mat`), if the data set has them.
    pub extra: Option<ImageStore>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    fn tiny() -> ImageStore {
        let mut pixels = Vec::new();
        for i in 0..4u8 {
            pixels.extend(std::iter::repeat_n(i, IMAGE_BYTES));
        }
        ImageStore::new(pixels, vec![0, 1, 1, 2], names(3))
    }

    #[test]
    fn images_are_3072_bytes_in_store_order() {
        let store = tiny();
        assert_eq!(store.len(), 4);
        assert_eq!(store.image(2).len(), IMAGE_BYTES);
        assert!(store.image(2).iter().all(|&p| p == 2));
        assert_eq!(store.label(3), 2);
        assert_eq!(store.class_counts(), vec![1, 2, 1]);
    }

    #[test]
    fn subset_and_concat_keep_pixels_with_their_labels() {
        let store = tiny();
        let sub = store.subset(&[3, 0]);
        assert_eq!(sub.labels(), &[2, 0]);
        assert!(sub.image(0).iter().all(|&p| p == 3));
        let joined = sub.clone().concat(&store);
        assert_eq!(joined.len(), 6);
        assert_eq!(joined.label(2), 0);
        assert_eq!(store.indices_by_class()[&1], vec![1, 2]);
    }

    #[test]
    #[should_panic(expected = "label 3 is out of range for 3 classes")]
    fn a_label_past_the_classes_is_refused() {
        ImageStore::new(vec![0; IMAGE_BYTES], vec![3], names(3));
    }
}
