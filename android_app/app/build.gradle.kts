plugins {
    id("com.android.application")
}

android {
    namespace = "dev.edgecnn.sample"
    compileSdk = 35

    defaultConfig {
        applicationId = "dev.edgecnn.sample"
        minSdk = 24      // Android 7.0; LiteRT 1.4.1's Interpreter needs 21
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    // The model is memory-mapped from the APK (AssetManager.openFd), which needs it stored uncompressed.
    androidResources {
        noCompress += "tflite"
    }
}

dependencies {
    // LiteRT (formerly TensorFlow Lite) Interpreter API, CPU with the XNNPACK delegate built in.
    implementation("com.google.ai.edge.litert:litert:1.4.1")

    // JVM unit tests of the pure-Java core (also run by `make java-test` without the Android SDK).
    testImplementation("junit:junit:4.13.2")
}
