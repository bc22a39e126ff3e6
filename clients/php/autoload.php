<?php
// For apps without Composer: require this file instead of vendor/autoload.php.
spl_autoload_register(function (string $class): void {
    if (strncmp($class, 'Pgmesh\\', 7) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, 7)) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
