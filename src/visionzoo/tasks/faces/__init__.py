"""Faces: detect, landmarks, embed, verify, find people, 3D mesh (issue 11)."""
