"""Everything that speaks Podman's libpod API: the typed ``PodmanAPI`` seam (``api``), its
HTTP implementation (``libpod`` with ``libpod_images`` and ``libpod_session``), decoding of
answers (``decode``) and output frames (``frames``), the upgraded attach connection
(``upgrade``), and finding (``connection``) and recovering (``recovery``) the service."""
