"""``python3 -m provnet.vc.bridged``: run provnet-bridged.

The vc_bridge role installs this file also as the ``__main__.py`` of the bridge host's
program directory ``provnet-bridged`` (run as ``python3 DIR``), hence the absolute import.
"""

from provnet.vc.bridged.service import main

if __name__ == "__main__":
    main()
