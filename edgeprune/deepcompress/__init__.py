"""Deep Compression (Han et al., ICLR'16): prune, share weights by k-means, Huffman-code, decode exactly."""

from .codec import decode, encode, stage_sizes
from .huffman import huffman_decode, huffman_encode
from .pipeline import deep_compress
from .prune import apply_masks, magnitude_masks, prunable, retrain
from .quantize import finetune_centroids, kmeans_1d, linear_init, quantize_model
from .speed import speed_report

__all__ = ["apply_masks", "decode", "deep_compress", "encode", "finetune_centroids", "huffman_decode",
           "huffman_encode", "kmeans_1d", "linear_init", "magnitude_masks", "prunable", "quantize_model", "retrain",
           "speed_report", "stage_sizes"]
