"""Frame sources (file, image folder, V4L2, RTSP, Pi camera) and the bounded frame queue."""
